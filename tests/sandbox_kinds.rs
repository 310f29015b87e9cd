//! The sandbox beyond identify: events (deduplicated by id), deletions, suppressions, through
//! v1 and v2, with their limits and messages, the faults, and the counts by action.

mod common;

use cio_import::sandbox::{Fault, SandboxConfig};
use common::*;
use serde_json::{json, Value};

const AUTH: Option<(&str, &str)> = Some((SITE, KEY));
const A: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
const B: &str = "01HF7YAT00DD57EY837JXWFH3B";

fn batch(sb: &Sb, ops: Value) -> (u16, Value) {
    let (st, _, body) = sb.http(
        "POST",
        "/api/v2/batch",
        &json!({ "batch": ops }).to_string(),
        AUTH,
    );
    (st, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn get(sb: &Sb, path: &str) -> (u16, Value) {
    let (st, _, body) = sb.http("GET", path, "", None);
    (st, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn op(action: &str, id: &str, extra: Value) -> Value {
    let mut o = json!({"type": "person", "identifiers": {"id": id}, "action": action});
    if let (Some(o), Some(extra)) = (o.as_object_mut(), extra.as_object()) {
        o.extend(extra.clone());
    }
    o
}

/// The 207's errors as (batch_index, field, message).
fn errors_of(v: &Value) -> Vec<(u64, String, String)> {
    v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {v}"))
        .iter()
        .map(|e| {
            (
                e["batch_index"].as_u64().unwrap(),
                e["field"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn events_through_v1_and_v2_are_kept_per_person_and_deduplicated_by_id() {
    let sb = plain();
    let first = json!({"name": "purchase", "id": A.to_lowercase(), "timestamp": 1_700_000_000,
        "data": {"amount": 12.5, "currency": "EUR"}});
    let path = "/api/v1/customers/42/events";
    assert_eq!(sb.http("POST", path, &first.to_string(), AUTH).0, 200);
    // The same id again (canonical case): accepted, not stored twice.
    let again = json!({"name": "purchase", "id": A, "timestamp": 1_700_000_000});
    let (st, _, body) = sb.http("POST", path, &again.to_string(), AUTH);
    assert_eq!((st, body.as_str()), (200, "{}"));
    let (st, v) = batch(
        &sb,
        json!([
            op("event", "42", json!({"name": " refund ", "id": B, "timestamp": 1_700_000_100,
                "attributes": {"amount": -3}})),
            // A repeated id is ignored whoever it names: nobody is created for it.
            {"type": "person", "identifiers": {"email": "e@x.io"}, "action": "event",
                "name": "purchase", "id": A},
            op("event", "7", json!({"name": "login"})),
            op("event", "7", json!({"name": "login"})),
        ]),
    );
    assert_eq!(st, 200, "{v}");
    let one = r#"{"type":"person","identifiers":{"cio_id":"c1"},"action":"event","name":"x"}"#;
    assert_eq!(sb.http("POST", "/api/v2/entity", one, AUTH).0, 200);

    let people = sb.people();
    assert_eq!(people.len(), 3, "{:?}", people.keys());
    assert!(!people.contains_key("e@x.io"));
    let p42 = &people["42"];
    assert_eq!(p42.updates, 0, "an event is not an identify");
    let got: Vec<(Option<&str>, &str, Option<i64>)> = p42
        .events
        .iter()
        .map(|e| (e.id.as_deref(), e.name.as_str(), e.timestamp))
        .collect();
    assert_eq!(
        got,
        [
            (Some(A), "purchase", Some(1_700_000_000)),
            (Some(B), "refund", Some(1_700_000_100)),
        ],
        "ids in canonical case, names trimmed, arrival order"
    );
    assert_eq!(
        Value::Object(p42.events[0].data.clone()),
        json!({"amount": 12.5, "currency": "EUR"})
    );
    assert_eq!(p42.events[1].data["amount"], json!(-3));
    assert_eq!(
        people["7"].events.len(),
        2,
        "events without an id are all kept"
    );
    assert_eq!(people["c1"].kind, "cio_id");

    let (st, v) = get(&sb, "/__sandbox/events");
    assert_eq!(st, 200);
    let listed = v.as_array().unwrap();
    assert_eq!(listed.len(), 5);
    assert!(listed
        .iter()
        .any(|e| e["identifier"] == "42" && e["id"] == A && e["data"]["currency"] == "EUR"));
    let (st, v) = get(&sb, "/__sandbox/people/42");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["events"].as_array().unwrap().len(), 2);
    assert_eq!(v["suppressed"], false);
    let (st, v) = get(&sb, "/__sandbox/people/c1?kind=cio_id");
    assert_eq!((st, v["events"][0]["name"].clone()), (200, json!("x")));
    assert_eq!(get(&sb, "/__sandbox/people/cio_c1").0, 200);

    let st = sb.stats();
    assert_eq!(st.action("event"), 7, "{:?}", st.by_action);
    assert_eq!(st.duplicate_events, 2);
    assert_eq!(st.operations, 7);
    assert_eq!(st.violation_count, 0, "{:?}", st.violations);
}

#[test]
fn delete_suppress_and_unsuppress_through_both_apis() {
    let sb = plain();
    let ids = ["1", "2", "3", "4", "5"];
    let ops: Vec<Value> = ids
        .iter()
        .map(|i| op("identify", i, json!({"attributes": {"n": i}})))
        .collect();
    assert_eq!(batch(&sb, json!(ops)).0, 200);
    let ev = json!({"name": "seen", "id": A}).to_string();
    assert_eq!(
        sb.http("POST", "/api/v1/customers/1/events", &ev, AUTH).0,
        200
    );
    // Delete: v1 and v2; the person and their events go.
    assert_eq!(sb.http("DELETE", "/api/v1/customers/1", "", AUTH).0, 200);
    assert_eq!(batch(&sb, json!([op("delete", "2", json!({}))])).0, 200);
    let mut left: Vec<String> = sb.people().into_keys().collect();
    left.sort();
    assert_eq!(left, ["3", "4", "5"]);
    assert!(sb.sb.events().is_empty());
    // The id of a deleted person's event is still known: a resend adds nothing.
    sb.http("POST", "/api/v1/customers/1/events", &ev, AUTH);
    assert!(!sb.people().contains_key("1"));

    // Suppress (v1) removes the person and ignores their identifier from then on.
    let (st, _, body) = sb.http("POST", "/api/v1/customers/3/suppress", "", AUTH);
    assert_eq!((st, body.as_str()), (200, "{}"));
    assert!(!sb.people().contains_key("3"));
    assert_eq!(
        sb.http("PUT", "/api/v1/customers/3", r#"{"n":"again"}"#, AUTH)
            .0,
        200
    );
    let (st, v) = batch(
        &sb,
        json!([
            op("identify", "3", json!({"attributes": {"n": "again"}})),
            op("event", "3", json!({"name": "ignored"})),
            op("suppress", "4", json!({})),
        ]),
    );
    assert_eq!(st, 200, "{v}");
    let people = sb.people();
    assert!(!people.contains_key("3") && !people.contains_key("4"));
    assert!(people.contains_key("5"));
    let (st, v) = get(&sb, "/__sandbox/people/3");
    assert_eq!((st, v["suppressed"].clone()), (404, json!(true)), "{v}");
    assert_eq!(get(&sb, "/__sandbox/people/5").1["suppressed"], false);
    let (_, v) = get(&sb, "/__sandbox/suppressed");
    assert_eq!(
        v,
        json!([{"kind": "id", "identifier": "3"}, {"kind": "id", "identifier": "4"}])
    );

    // Unsuppress (v2 for 3, v1 for 4) frees the identifier and recreates nobody.
    assert_eq!(batch(&sb, json!([op("unsuppress", "3", json!({}))])).0, 200);
    assert_eq!(
        sb.http("POST", "/api/v1/customers/4/unsuppress", "", AUTH)
            .0,
        200
    );
    assert!(sb.sb.suppressed().is_empty());
    assert!(!sb.people().contains_key("3"));
    sb.http("PUT", "/api/v1/customers/3", r#"{"fresh":true}"#, AUTH);
    let p3 = &sb.people()["3"];
    assert_eq!(Value::Object(p3.attributes.clone()), json!({"fresh": true}));
    assert_eq!(p3.updates, 1);

    let st = sb.stats();
    let by: Vec<(&str, u64)> = st.by_action.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        by,
        [
            ("add_device", 0),
            ("add_relationships", 0),
            ("delete", 2),
            ("delete_device", 0),
            ("delete_relationships", 0),
            ("event", 3),
            ("identify", 8),
            ("merge", 0),
            ("object_delete", 0),
            ("object_identify", 0),
            ("suppress", 2),
            ("unsuppress", 2),
        ]
    );
    assert_eq!(st.ignored_suppressed, 3);
    assert_eq!(st.duplicate_events, 1);
    assert_eq!(st.operations, 17);
}

#[test]
fn event_limits_answer_v1_400_and_batch_207_with_the_documented_messages() {
    let sb = plain();
    let v1 = |body: Value| {
        let (st, _, text) = sb.http(
            "POST",
            "/api/v1/customers/9/events",
            &body.to_string(),
            AUTH,
        );
        (st, text)
    };
    let cases = [
        (
            json!({"name": "n".repeat(101)}),
            "event name cannot be longer than 100 bytes",
        ),
        (json!({"data": {}}), "event name must be present"),
        (
            json!({"name": "  "}),
            "event name cannot be an empty string",
        ),
        (json!({"name": 5}), "event name must be a string"),
        (
            json!({"name": "x", "id": "not-a-ulid"}),
            "event id must be a ULID",
        ),
        (
            json!({"name": "x", "id": "8ZZZZZZZZZZZZZZZZZZZZZZZZZ"}),
            "event id must be a ULID",
        ),
        (
            json!({"name": "x", "timestamp": "2024-01-01"}),
            "timestamp must be integer Unix seconds",
        ),
        (
            json!({"name": "x", "timestamp": 1.5}),
            "timestamp must be integer Unix seconds",
        ),
        (
            json!({"name": "x", "data": [1]}),
            "data must be a JSON object",
        ),
        (
            json!({"name": "x", "data": {"blob": "y".repeat(100_000)}}),
            "event data cannot be longer than 100000 bytes",
        ),
        (
            json!({"name": "x", "type": "page"}),
            "event type 'page' is not supported by the sandbox yet",
        ),
        (json!(["x"]), "body must be a JSON object"),
    ];
    for (body, want) in &cases {
        let (st, text) = v1(body.clone());
        assert_eq!(st, 400, "{body}: {text}");
        assert!(text.contains(want), "{want:?} not in {text}");
    }
    // At the limits: accepted.
    assert_eq!(v1(json!({"name": "n".repeat(100)})).0, 200);
    assert_eq!(
        v1(json!({"name": "x", "data": {"blob": "y".repeat(99_000)}})).0,
        200
    );
    assert_eq!(sb.people()["9"].events.len(), 2);

    let (st, v) = batch(
        &sb,
        json!([
            op("event", "1", json!({"name": "ok", "id": A})),
            op("event", "2", json!({"name": "n".repeat(101)})),
            op("event", "3", json!({"name": "x", "id": "01ARZ3NDEKTSV4RRFFQ69G5FAI"})),
            op("event", "4", json!({"attributes": {"a": 1}})),
            op("merge", "5", json!({})),
            op("add_device", "6", json!({"device": {"token": "t"}})),
            op("page", "7", json!({"name": "/home"})),
            op("fly", "8", json!({})),
            op("event", "9", json!({"name": "x", "timestamp": "yesterday"})),
            op("delete", "10", json!({})),
            {"type": "object", "identifiers": {"object_type_id": "1", "object_id": "a"},
                "action": "identify_anonymous"},
        ]),
    );
    assert_eq!(st, 207, "{v}");
    let errors = errors_of(&v);
    let want = [
        (1, "name", "event name cannot be longer than 100 bytes"),
        (
            2,
            "id",
            "event id must be a ULID: 26 characters of Crockford base32",
        ),
        (3, "name", "event name must be present"),
        // A merge names `primary` and `secondary`; a device needs its platform.
        (
            4,
            "primary",
            "primary and secondary must each hold exactly one of id, email, cio_id",
        ),
        (5, "device.platform", "platform must be ios or android"),
        (
            6,
            "action",
            "action 'page' is not supported by the sandbox yet",
        ),
        (7, "action", "unknown action 'fly'"),
        (8, "timestamp", "timestamp must be integer Unix seconds"),
        (
            10,
            "action",
            "object action 'identify_anonymous' is not supported by the sandbox yet",
        ),
    ];
    let got: Vec<(u64, &str, &str)> = errors
        .iter()
        .map(|(i, f, m)| (*i, f.as_str(), m.as_str()))
        .collect();
    assert_eq!(got, want);
    assert!(v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["reason"] == "invalid"));
    assert_eq!(sb.people()["1"].events[0].id.as_deref(), Some(A));
    let st = sb.stats();
    assert_eq!(
        st.action("event"),
        3,
        "only accepted ones: {:?}",
        st.by_action
    );
    assert_eq!(st.action("delete"), 1);
    assert_eq!(st.action("identify"), 0);

    // An event operation over 32,000 bytes fails the whole batch, before the data's own
    // limit of 100,000 could.
    let fat = op(
        "event",
        "f",
        json!({"name": "x", "attributes": {"blob": "y".repeat(32_000)}}),
    );
    let (st, v) = batch(&sb, json!([op("event", "g", json!({"name": "x"})), fat]));
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["errors"][0]["reason"], "request_too_large");
    assert!(!sb.people().contains_key("g"), "nothing of a refused batch");
    // /api/v2/entity answers 400 with the same words.
    let long = op("event", "e", json!({"name": "n".repeat(101)})).to_string();
    let (st, _, body) = sb.http("POST", "/api/v2/entity", &long, AUTH);
    assert_eq!(st, 400);
    assert!(
        body.contains("event name cannot be longer than 100 bytes"),
        "{body}"
    );
    let page = op("page", "e", json!({})).to_string();
    let (st, _, body) = sb.http("POST", "/api/v2/entity", &page, AUTH);
    assert_eq!(st, 400);
    assert!(body.contains("not supported by the sandbox yet"), "{body}");
}

#[test]
fn faults_refusals_and_violations_hold_for_every_kind() {
    let sb = sandbox(SandboxConfig {
        reject_ids: vec!["bad".into()],
        poison_ids: vec!["poison".into()],
        script: vec![
            Fault::Status(503),
            Fault::Ambiguous,
            Fault::Pass,
            Fault::Unreadable207 { truncated: true },
        ],
        ..SandboxConfig::plain()
    });
    let ev = json!({"name": "x", "id": A}).to_string();
    // 503: not applied; ambiguous: applied, then 500; a resend is deduplicated.
    let path = "/api/v1/customers/1/events";
    assert_eq!(sb.http("POST", path, &ev, AUTH).0, 503);
    assert!(sb.people().is_empty());
    assert_eq!(sb.http("POST", path, &ev, AUTH).0, 500);
    assert_eq!(sb.http("POST", path, &ev, AUTH).0, 200);
    assert_eq!(sb.people()["1"].events.len(), 1);
    // An unreadable 207: the operations were applied all the same.
    let (st, _, body) = sb.http(
        "POST",
        "/api/v2/batch",
        &json!({"batch": [op("suppress", "1", json!({})), op("event", "bad", json!({"name": "x"}))]})
            .to_string(),
        AUTH,
    );
    assert_eq!(st, 207);
    assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");
    assert!(sb.people().is_empty());
    assert_eq!(sb.sb.suppressed().len(), 1);
    // --reject-id answers for every kind, v1 400 and v2 207.
    for (method, p, body) in [
        ("POST", "/api/v1/customers/bad/events", ev.as_str()),
        ("POST", "/api/v1/customers/bad/suppress", ""),
        ("POST", "/api/v1/customers/bad/unsuppress", ""),
        ("DELETE", "/api/v1/customers/bad", ""),
    ] {
        let (st, _, text) = sb.http(method, p, body, AUTH);
        assert_eq!(st, 400, "{p}: {text}");
        assert!(text.contains("refused (sandbox --reject-id)"), "{text}");
    }
    let (st, v) = batch(
        &sb,
        json!([
            op("delete", "bad", json!({})),
            op("delete", "fine", json!({}))
        ]),
    );
    assert_eq!(st, 207, "{v}");
    assert_eq!(errors_of(&v).len(), 1);
    // --poison-id fails a whole batch whatever the action.
    let (st, _) = batch(
        &sb,
        json!([
            op("unsuppress", "1", json!({})),
            op("event", "poison", json!({"name": "x"}))
        ]),
    );
    assert_eq!(st, 400);
    assert_eq!(
        sb.sb.suppressed().len(),
        1,
        "nothing of a poisoned batch applied"
    );
    // v1 identifier checks hold on the new paths too.
    let (st, _, text) = sb.http("POST", "/api/v1/customers/%20/suppress", "", AUTH);
    assert_eq!(st, 400);
    assert!(text.contains("cannot be an empty string"), "{text}");
    let long = format!("/api/v1/customers/{}/events", "i".repeat(200));
    assert_eq!(sb.http("POST", &long, &ev, AUTH).0, 400);
    // Wrong credentials: 401 before anything is applied.
    assert_eq!(
        sb.http(
            "POST",
            "/api/v1/customers/2/events",
            &ev,
            Some((SITE, "no"))
        )
        .0,
        401
    );
    // Violations: an id with an unencoded '/' that lands on an event path; an event
    // timestamp in milliseconds.
    assert_eq!(
        sb.http("PUT", "/api/v1/customers/a/events", "{}", AUTH).0,
        404
    );
    let ms = json!({"name": "x", "timestamp": 1_700_000_000_000_i64}).to_string();
    assert_eq!(
        sb.http("POST", "/api/v1/customers/2/events", &ms, AUTH).0,
        200
    );
    let v = sb.stats().violations;
    assert!(v.iter().any(|s| s.contains("unencoded '/'")), "{v:?}");
    assert!(
        v.iter().any(|s| s.contains("looks like milliseconds")),
        "{v:?}"
    );
    let st = sb.stats();
    assert_eq!(st.action("event"), 3, "{:?}", st.by_action);
    assert_eq!(st.action("delete"), 1);
    assert_eq!(st.action("suppress"), 1);
    assert_eq!(st.action("unsuppress"), 0);
    assert_eq!(st.duplicate_events, 1);
}

#[test]
fn people_only_traffic_shows_zero_counts_and_an_unchanged_dump() {
    let sb = plain();
    sb.http("PUT", "/api/v1/customers/1", r#"{"plan":"pro"}"#, AUTH);
    let (_, v) = get(&sb, "/__sandbox/stats");
    assert_eq!(
        v["by_action"],
        json!({"add_device": 0, "add_relationships": 0, "delete": 0, "delete_device": 0,
            "delete_relationships": 0, "event": 0, "identify": 1, "merge": 0,
            "object_delete": 0, "object_identify": 0, "suppress": 0, "unsuppress": 0})
    );
    assert_eq!(
        (
            v["duplicate_events"].clone(),
            v["ignored_suppressed"].clone()
        ),
        (json!(0), json!(0))
    );
    let dir = tempdir();
    let path = dir.path().join("people.jsonl");
    sb.sb.save_people(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        "{\"kind\":\"id\",\"identifier\":\"1\",\"attributes\":{\"plan\":\"pro\"},\"updates\":1}\n",
        "no events key when there are none"
    );
    // With events, the dump carries them.
    sb.http(
        "POST",
        "/api/v1/customers/1/events",
        &json!({"name": "x", "id": A, "timestamp": 5}).to_string(),
        AUTH,
    );
    sb.sb.save_people(&path).unwrap();
    let line: Value = serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
    assert_eq!(
        line["events"],
        json!([{"id": A, "name": "x", "timestamp": 5, "data": {}}])
    );
    let back: cio_import::sandbox::Person = serde_json::from_value(line).unwrap();
    assert_eq!(back.events.len(), 1);
}
