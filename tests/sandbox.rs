//! The sandbox on its own: endpoints, auth, limits and their messages, 207, rate limit,
//! faults, stats and violations, the foreground command, and `import --sandbox`.

mod common;

use cio_import::sandbox::SandboxConfig;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const AUTH: Option<(&str, &str)> = Some((SITE, KEY));

#[test]
fn identify_merges_delete_removes_region_answers() {
    let sb = plain();
    assert_eq!(
        sb.http("PUT", "/api/v1/customers/42", r#"{"a":"1","b":2}"#, AUTH)
            .0,
        200
    );
    assert_eq!(
        sb.http("PUT", "/api/v1/customers/42", r#"{"b":3,"c":true}"#, AUTH)
            .0,
        200
    );
    let p = &sb.people()["42"];
    assert_eq!(
        Value::Object(p.attributes.clone()),
        json!({"a":"1","b":3,"c":true})
    );
    assert_eq!(p.updates, 2);
    assert_eq!(sb.http("DELETE", "/api/v1/customers/42", "", AUTH).0, 200);
    assert!(sb.people().is_empty());
    let (st, _, body) = sb.http("GET", "/api/v1/accounts/region", "", AUTH);
    assert_eq!(st, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["region"], "us");
    // _update never creates.
    assert_eq!(
        sb.http(
            "PUT",
            "/api/v1/customers/new",
            r#"{"_update":true,"x":1}"#,
            AUTH
        )
        .0,
        200
    );
    assert!(sb.people().is_empty());
    // v2 entity.
    let op = r#"{"type":"person","identifiers":{"email":"e@x.io"},"action":"identify","attributes":{"p":1}}"#;
    assert_eq!(sb.http("POST", "/api/v2/entity", op, AUTH).0, 200);
    assert_eq!(sb.people()["e@x.io"].kind, "email");
}

#[test]
fn wrong_or_missing_credentials_get_401_and_none_configured_accepts_any() {
    let sb = plain();
    assert_eq!(
        sb.http("PUT", "/api/v1/customers/1", "{}", Some((SITE, "wrong")))
            .0,
        401
    );
    assert_eq!(sb.http("PUT", "/api/v1/customers/1", "{}", None).0, 401);
    assert_eq!(
        sb.http("POST", "/api/v2/batch", r#"{"batch":[]}"#, Some(("x", KEY)))
            .0,
        401
    );
    assert!(sb.people().is_empty());
    let open = sandbox_as_is(SandboxConfig::plain());
    assert_eq!(
        open.http("PUT", "/api/v1/customers/1", "{}", Some(("any", "thing")))
            .0,
        200
    );
}

#[test]
fn limits_answer_400_with_the_documented_messages() {
    let sb = plain();
    let many: serde_json::Map<String, Value> =
        (0..301).map(|i| (format!("a{i}"), json!(i))).collect();
    let (st, _, body) = sb.http(
        "PUT",
        "/api/v1/customers/1",
        &Value::Object(many).to_string(),
        AUTH,
    );
    assert_eq!(st, 400);
    assert!(
        body.contains("cannot identify more than 300 attributes in one request"),
        "{body}"
    );
    let long_name = format!(r#"{{"{}":1}}"#, "n".repeat(151));
    let (st, _, body) = sb.http("PUT", "/api/v1/customers/1", &long_name, AUTH);
    assert_eq!(st, 400);
    assert!(
        body.contains("attribute name cannot be longer than 150 bytes"),
        "{body}"
    );
    let long_value = format!(r#"{{"v":"{}"}}"#, "x".repeat(1001));
    let (st, _, body) = sb.http("PUT", "/api/v1/customers/1", &long_value, AUTH);
    assert_eq!(st, 400);
    assert!(
        body.contains("value for attribute 'v' cannot be longer than 1000 bytes"),
        "{body}"
    );
    // Both documented v1 error forms are used.
    let forms: Vec<bool> = (0..2)
        .map(|_| {
            sb.http("PUT", "/api/v1/customers/1", &long_value, AUTH)
                .2
                .contains("\"errors\"")
        })
        .collect();
    assert!(forms.contains(&true) && forms.contains(&false), "{forms:?}");
    // Oversize batch request, oversize operation.
    let op = |i: usize, pad: usize| json!({"type":"person","identifiers":{"id":i.to_string()},"action":"identify","attributes":{"pad":"x".repeat(pad)}});
    let big: Vec<Value> = (0..600).map(|i| op(i, 900)).collect();
    let (st, _, body) = sb.http(
        "POST",
        "/api/v2/batch",
        &json!({"batch": big}).to_string(),
        AUTH,
    );
    assert_eq!(st, 400, "{body}");
    let mut attrs = serde_json::Map::new();
    for i in 0..40 {
        attrs.insert(format!("a{i}"), json!("y".repeat(900)));
    }
    let fat =
        json!({"type":"person","identifiers":{"id":"f"},"action":"identify","attributes":attrs});
    let (st, _, body) = sb.http(
        "POST",
        "/api/v2/batch",
        &json!({"batch": [fat]}).to_string(),
        AUTH,
    );
    assert_eq!(st, 400, "{body}");
    assert!(
        sb.people().is_empty(),
        "nothing of a refused request is applied"
    );
    let st = sb.stats();
    assert!(
        st.violations
            .iter()
            .any(|v| v.contains("oversize batch request")),
        "{:?}",
        st.violations
    );
    assert!(
        st.violations
            .iter()
            .any(|v| v.contains("oversize batch operation")),
        "{:?}",
        st.violations
    );
    assert!(st.largest_request_bytes > 500_000);
}

#[test]
fn a_batch_with_invalid_operations_answers_207_and_applies_the_rest() {
    let sb = plain();
    let batch = json!({"batch": [
        {"type":"person","identifiers":{"id":"1"},"action":"identify","attributes":{"a":1}},
        {"type":"person","identifiers":{},"action":"identify","attributes":{"a":2}},
        {"type":"person","identifiers":{"id":"3"},"action":"identify","attributes":{"v":"x".repeat(1001)}},
        {"type":"person","identifiers":{"cio_id":"cio_abc"},"action":"identify","attributes":{"a":4}},
        {"type":"person","action":"identify","attributes":{"a":5}},
    ]});
    let (st, _, body) = sb.http("POST", "/api/v2/batch", &batch.to_string(), AUTH);
    assert_eq!(st, 207, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let idx: Vec<u64> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["batch_index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, vec![1, 2, 4]);
    for e in v["errors"].as_array().unwrap() {
        assert!(
            e["reason"].is_string() && e["field"].is_string() && e["message"].is_string(),
            "{e}"
        );
    }
    let people = sb.people();
    assert_eq!(people.len(), 2);
    assert!(people.contains_key("1") && people.contains_key("cio_abc"));
    let st = sb.stats();
    assert_eq!(st.operations, 2);
    assert!(
        st.violations.iter().any(|v| v.contains("cio_ prefix")),
        "{:?}",
        st.violations
    );
    assert!(
        st.violations
            .iter()
            .any(|v| v.contains("without identifiers")),
        "{:?}",
        st.violations
    );
}

#[test]
fn protocol_violations_are_recorded() {
    let sb = plain();
    sb.http("PUT", "/api/v1/customers/a/b", "{}", AUTH);
    sb.http("PUT", "/api/v1/customers/x+y@z", "{}", AUTH);
    sb.http(
        "PUT",
        "/api/v1/customers/7",
        r#"{"id":"cio_123","created_at":"2024-01-01"}"#,
        AUTH,
    );
    let v = sb.stats().violations;
    assert!(v.iter().any(|s| s.contains("unencoded '/'")), "{v:?}");
    assert!(
        v.iter().any(|s| s.contains("not fully percent-encoded")),
        "{v:?}"
    );
    assert!(
        v.iter().any(|s| s.contains("overwrites the person's id")),
        "{v:?}"
    );
    assert!(
        v.iter().any(|s| s.contains("created_at is not integer")),
        "{v:?}"
    );
}

#[test]
fn the_rate_limit_answers_429_with_retry_after_when_asked() {
    let sb = sandbox(SandboxConfig {
        limit: 1,
        burst: 2,
        retry_after: Some(7),
        ..SandboxConfig::default()
    });
    let answers: Vec<(u16, Option<String>)> = (0..6)
        .map(|i| {
            let (s, ra, _) = sb.http("PUT", &format!("/api/v1/customers/{i}"), "{}", AUTH);
            (s, ra)
        })
        .collect();
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    // The burst of 2 passes; at 1/s at most one more can have been refilled meanwhile.
    assert!((2..=3).contains(&ok), "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|a| a.0 != 200)
            .all(|a| a.0 == 429 && a.1.as_deref() == Some("7")),
        "{answers:?}"
    );
    assert_eq!(sb.people().len(), ok, "a 429'd request is not applied");
    let st = sb.stats();
    assert_eq!(st.status(429) as usize, 6 - ok);
    assert!(st.max_requests_per_second >= 2);
}

#[test]
fn faults_happen_before_applying_except_the_ambiguous_one() {
    // Every request fails with a random 5xx: nothing applied.
    let sb = sandbox(SandboxConfig {
        fail_rate: 1.0,
        seed: Some(3),
        ..SandboxConfig::plain()
    });
    let codes: Vec<u16> = (0..40)
        .map(|i| {
            sb.http("PUT", &format!("/api/v1/customers/{i}"), "{}", AUTH)
                .0
        })
        .collect();
    assert!(
        codes.iter().all(|c| [500, 502, 503, 504].contains(c)),
        "{codes:?}"
    );
    assert!(codes.contains(&500) && codes.contains(&503), "{codes:?}");
    assert!(sb.people().is_empty());
    // Resets: no answer at all.
    let sb = sandbox(SandboxConfig {
        reset_rate: 1.0,
        ..SandboxConfig::plain()
    });
    let (st, _, err) = sb.http("PUT", "/api/v1/customers/1", "{}", AUTH);
    assert_eq!(st, 0, "{err}");
    assert_eq!(sb.stats().resets, 1);
    assert!(sb.people().is_empty());
    // Ambiguous: applied, then 500.
    let sb = sandbox(SandboxConfig {
        ambiguous_rate: 1.0,
        ..SandboxConfig::plain()
    });
    assert_eq!(
        sb.http("PUT", "/api/v1/customers/1", r#"{"a":1}"#, AUTH).0,
        500
    );
    assert_eq!(sb.people()["1"].attributes["a"], json!(1));
    // Slow: answered 504 after the delay, not applied.
    let sb = sandbox(SandboxConfig {
        slow_rate: 1.0,
        slow: Duration::from_millis(300),
        ..SandboxConfig::plain()
    });
    let t = std::time::Instant::now();
    assert_eq!(sb.http("PUT", "/api/v1/customers/1", "{}", AUTH).0, 504);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(sb.people().is_empty());
    // Outage window: 503 while it lasts.
    let sb = sandbox(SandboxConfig {
        outage: Some((Duration::ZERO, Duration::from_secs(3600))),
        ..SandboxConfig::plain()
    });
    assert_eq!(sb.http("PUT", "/api/v1/customers/1", "{}", AUTH).0, 503);
    // Latency is added.
    let sb = sandbox(SandboxConfig {
        latency: Duration::from_millis(200),
        ..SandboxConfig::plain()
    });
    let t = std::time::Instant::now();
    assert_eq!(sb.http("PUT", "/api/v1/customers/1", "{}", AUTH).0, 200);
    assert!(t.elapsed() >= Duration::from_millis(160));
}

#[test]
fn the_same_seed_gives_the_same_faults() {
    let run = |seed| {
        let sb = sandbox(SandboxConfig {
            fail_rate: 0.5,
            seed: Some(seed),
            ..SandboxConfig::plain()
        });
        (0..30)
            .map(|i| {
                sb.http("PUT", &format!("/api/v1/customers/{i}"), "{}", AUTH)
                    .0
            })
            .collect::<Vec<u16>>()
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
}

#[test]
fn stats_count_in_flight_and_answers() {
    let sb = sandbox(SandboxConfig {
        latency: Duration::from_millis(300),
        ..SandboxConfig::plain()
    });
    let url = sb.url();
    sb.rt.block_on(async move {
        let c = reqwest::Client::new();
        let futs = (0..8).map(|i| {
            c.put(format!("{url}/api/v1/customers/{i}"))
                .basic_auth(SITE, Some(KEY))
                .body("{}")
                .send()
        });
        for r in futures_join(futs.collect()).await {
            assert_eq!(r.unwrap().status(), 200);
        }
    });
    let st = sb.stats();
    assert_eq!(st.requests, 8);
    assert_eq!(st.status(200), 8);
    assert_eq!(st.max_in_flight, 8);
    assert_eq!(st.operations, 8);
}

async fn futures_join<F>(futs: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[test]
fn the_foreground_sandbox_prints_its_url_first_and_saves_people_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let dir = tempdir();
    let save = dir.path().join("people.jsonl");
    let mut child = std::process::Command::new(bin())
        .args(["sandbox", "--port", "0", "--limit", "0", "--save"])
        .arg(&save)
        .env_remove("CUSTOMERIO_SITE_ID")
        .env_remove("CUSTOMERIO_TRACK_API_KEY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url:?}");
    write(dir.path(), "p.csv", "id,plan\n1,pro\n2,free\n");
    let run = import(dir.path(), Some(&url), &["p.csv"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("accepting any"), "{stderr}");
    let saved = std::fs::read_to_string(&save).unwrap();
    assert_eq!(saved.lines().count(), 2, "{saved}");
    assert!(saved.contains(r#""identifier":"1""#) && saved.contains(r#""plan":"pro""#));
    assert_eq!(mode(&save), 0o600);
}

#[test]
fn import_with_tls_needs_the_sandbox_certificate() {
    let dir = tempdir();
    let cert = dir.path().join("cert.pem");
    let (mut child, url) = spawn_sandbox(&[
        "--limit",
        "0",
        "--tls",
        "--cert-out",
        cert.to_str().unwrap(),
    ]);
    write(dir.path(), "p.csv", "id\n1\n2\n");
    let trusted = import(
        dir.path(),
        Some(&url),
        &["p.csv", "--ca-cert", cert.to_str().unwrap()],
        None,
    );
    assert_eq!(trusted.code, 0, "{}", trusted.stderr);
    assert_eq!(trusted.n("sent"), 2);
    let localhost = url.replace("127.0.0.1", "localhost");
    let by_name = import(
        dir.path(),
        Some(&localhost),
        &["p.csv", "--ca-cert", cert.to_str().unwrap(), "--api", "v1"],
        None,
    );
    assert_eq!(by_name.code, 0, "{}", by_name.stderr);
    let untrusted = import(dir.path(), Some(&url), &["p.csv"], None);
    assert_eq!(
        untrusted.code, 3,
        "an untrusted certificate is fatal, not retried: {}",
        untrusted.stderr
    );
    assert!(
        untrusted.stderr.contains("--ca-cert"),
        "{}",
        untrusted.stderr
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn import_sandbox_runs_the_samples_with_no_account() {
    let dir = tempdir();
    // A copy in the run's folder: the reports and the saved people go next to the input.
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/customers.csv");
    std::fs::copy(&sample, dir.path().join("customers.csv")).unwrap();
    let out = without_credentials(
        dir.path(),
        &[
            "import",
            "--sandbox",
            "--summary",
            "s.json",
            "customers.csv",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the samples hold broken rows on purpose: {stderr}"
    );
    let s: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("s.json")).unwrap()).unwrap();
    assert_accounted(&s);
    assert_eq!(s["invalid"], 6);
    assert_eq!(s["sent"], 2995);
    let saved =
        std::fs::read_to_string(dir.path().join("customers.csv.sandbox-people.jsonl")).unwrap();
    assert_eq!(saved.lines().count(), 2995);
    assert!(
        stderr.contains("saved to customers.csv.sandbox-people.jsonl"),
        "{stderr}"
    );
}
