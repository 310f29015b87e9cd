//! `--kind objects` and `--kind relationships`: objects and people's relationships to them
//! through v2 batch and through v1 (each operation alone to /api/v2/entity), one invalid
//! object or relationship costing only its row (207 and bisection), the ledger skipping what
//! is unchanged and forgetting what is deleted, the limits checked at the row, the delete
//! confirmation, the presets and `inspect`.

mod common;

use cio_import::sandbox::SandboxConfig;
use common::*;
use serde_json::{json, Value};

const COMPANIES: &str = "\
object_id,name,plan,seats
acme,Acme Corp,enterprise,50
globex,Globex,pro,12
initech,Initech,starter,3
";

const PEOPLE: &str = "\
id,email
u1,u1@example.com
u2,u2@example.com
u3,u3@example.com
";

const MEMBERSHIPS: &str = "\
id,object_id,role
u1,acme,admin
u2,acme,member
u2,globex,billing
u3,initech,member
";

/// The sandbox's objects as {object_id: (attributes, [(person, relationship attributes)])}.
fn objects(sb: &Sb) -> std::collections::BTreeMap<String, (Value, Vec<(String, Value)>)> {
    sb.sb
        .objects()
        .into_iter()
        .map(|o| {
            assert_eq!(o.object_type_id, "3");
            let people = o
                .people
                .into_iter()
                .map(|p| (p.identifier, Value::Object(p.attributes)))
                .collect();
            (o.object_id, (Value::Object(o.attributes), people))
        })
        .collect()
}

fn objects_args<'a>(file: &'a str, api: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        file,
        "--kind",
        "objects",
        "--object-type-id",
        "3",
        "--api",
        api,
    ];
    v.extend_from_slice(more);
    v
}

fn relationship_args<'a>(file: &'a str, api: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        file,
        "--kind",
        "relationships",
        "--object-type-id",
        "3",
        "--api",
        api,
    ];
    v.extend_from_slice(more);
    v
}

#[test]
fn objects_are_identified_and_deleted_through_batch_and_v1() {
    for api in ["batch", "v1"] {
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), "companies.csv", COMPANIES);
        let run = sb.import(dir.path(), &objects_args("companies.csv", api, &[]));
        assert_eq!(run.code, 0, "{api}: {}", run.stderr);
        assert_eq!((run.n("rows"), run.n("sent")), (3, 3), "{api}");
        let st = sb.stats();
        assert_eq!(st.action("object_identify"), 3, "{api}");
        assert_eq!(st.action("identify"), 0, "{api}");
        assert!(st.violations.is_empty(), "{api}: {:?}", st.violations);
        // v1 has no object path: each operation alone to /api/v2/entity.
        assert_eq!(st.requests, if api == "v1" { 3 } else { 1 }, "{api}");
        let got = objects(&sb);
        assert_eq!(
            got["acme"].0,
            json!({"name": "Acme Corp", "plan": "enterprise", "seats": "50"}),
            "{api}"
        );
        assert_eq!(got.len(), 3);

        write(dir.path(), "gone.csv", "object_id\nglobex\n");
        let run = sb.import(
            dir.path(),
            &objects_args("gone.csv", api, &["--action", "delete", "--yes"]),
        );
        assert_eq!(run.code, 0, "{api}: {}", run.stderr);
        assert_eq!(sb.stats().action("object_delete"), 1, "{api}");
        let got = objects(&sb);
        assert!(!got.contains_key("globex"), "{api}: {got:?}");
        assert_eq!(got.len(), 2, "{api}");
    }
}

#[test]
fn relationships_relate_people_to_objects_through_batch_and_v1_and_are_removed() {
    for api in ["batch", "v1"] {
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), "people.csv", PEOPLE);
        write(dir.path(), "companies.csv", COMPANIES);
        write(dir.path(), "memberships.csv", MEMBERSHIPS);
        assert_eq!(sb.import(dir.path(), &["people.csv", "--api", api]).code, 0);
        assert_eq!(
            sb.import(dir.path(), &objects_args("companies.csv", api, &[]))
                .code,
            0
        );
        let run = sb.import(dir.path(), &relationship_args("memberships.csv", api, &[]));
        assert_eq!(run.code, 0, "{api}: {}", run.stderr);
        assert_eq!((run.n("rows"), run.n("sent")), (4, 4), "{api}");
        let st = sb.stats();
        assert_eq!(st.action("add_relationships"), 4, "{api}");
        assert!(st.violations.is_empty(), "{api}: {:?}", st.violations);
        let got = objects(&sb);
        assert_eq!(
            got["acme"].1,
            vec![
                ("u1".to_string(), json!({"role": "admin"})),
                ("u2".to_string(), json!({"role": "member"}))
            ],
            "{api}"
        );
        // Shown on the person too.
        let u2 = &sb.people()["u2"];
        let rel: Vec<(&str, &str)> = u2
            .relationships
            .iter()
            .map(|r| (r.object_id.as_str(), r.attributes["role"].as_str().unwrap()))
            .collect();
        assert_eq!(
            rel,
            vec![("acme", "member"), ("globex", "billing")],
            "{api}"
        );
        // The HTTP view of a person carries them.
        let (status, _, body) = sb.http("GET", "/__sandbox/people/u2", "", None);
        assert_eq!(status, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["relationships"].as_array().unwrap().len(), 2, "{body}");

        write(
            dir.path(),
            "leave.csv",
            "id,object_id,role\nu2,acme,whatever\n",
        );
        let run = sb.import(
            dir.path(),
            &relationship_args("leave.csv", api, &["--action", "delete", "--yes"]),
        );
        assert_eq!(run.code, 0, "{api}: {}", run.stderr);
        assert_eq!(sb.stats().action("delete_relationships"), 1, "{api}");
        let got = objects(&sb);
        assert_eq!(got["acme"].1.len(), 1, "{api}: {got:?}");
        assert_eq!(got["globex"].1.len(), 1, "{api}");

        // Deleting an object takes its relationships with it; deleting a person, theirs.
        write(dir.path(), "gone.csv", "object_id\nglobex\n");
        assert_eq!(
            sb.import(
                dir.path(),
                &objects_args("gone.csv", api, &["--action", "delete", "--yes"])
            )
            .code,
            0
        );
        write(dir.path(), "bye.csv", "id\nu1\n");
        assert_eq!(
            sb.import(
                dir.path(),
                &["bye.csv", "--action", "delete", "--yes", "--api", api]
            )
            .code,
            0
        );
        assert!(sb.people()["u2"].relationships.is_empty(), "{api}");
        assert!(objects(&sb)["acme"].1.is_empty(), "{api}");
    }
}

#[test]
fn one_refused_object_or_relationship_in_a_batch_costs_only_its_row() {
    let sb = sandbox(SandboxConfig {
        reject_ids: vec!["globex".into(), "u3".into()],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "companies.csv", COMPANIES);
    write(dir.path(), "memberships.csv", MEMBERSHIPS);
    let run = sb.import(dir.path(), &objects_args("companies.csv", "batch", &[]));
    assert_eq!((run.n("sent"), run.n("rejected")), (2, 1), "{}", run.stderr);
    assert_eq!(sb.stats().status(207), 1);
    let errors = run.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["line"], "3");
    assert_eq!(errors[0]["status"], "207");
    assert!(errors[0]["message"].contains("globex"), "{:?}", errors[0]);
    assert!(std::fs::read_to_string(run.rejects_path("csv"))
        .unwrap()
        .contains("globex,Globex,pro,12"));

    let run = sb.import(
        dir.path(),
        &relationship_args("memberships.csv", "batch", &[]),
    );
    assert_eq!((run.n("sent"), run.n("rejected")), (3, 1), "{}", run.stderr);
    let errors = run.errors();
    assert_eq!(
        (errors[0]["line"].as_str(), errors[0]["identifier"].as_str()),
        ("5", "u3")
    );
}

#[test]
fn a_poisoned_batch_is_halved_down_to_the_poison_object_or_relationship() {
    let companies = numbered_csv("object_id,name", 32, |i| format!("c{i},Company {i}"));
    let memberships = numbered_csv("id,object_id,role", 32, |i| {
        format!("p{i},c{},member", i % 4)
    });
    let sb = sandbox(SandboxConfig {
        poison_ids: vec!["c17".into(), "p9".into()],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "companies.csv", &companies);
    write(dir.path(), "memberships.csv", &memberships);
    let run = sb.import(dir.path(), &objects_args("companies.csv", "batch", &[]));
    assert_eq!(
        (run.n("sent"), run.n("rejected")),
        (31, 1),
        "{}",
        run.stderr
    );
    assert_eq!(run.errors()[0]["identifier"], "c17");
    assert_eq!(sb.sb.objects().len(), 31);
    let run = sb.import(
        dir.path(),
        &relationship_args("memberships.csv", "batch", &[]),
    );
    assert_eq!(
        (run.n("sent"), run.n("rejected")),
        (31, 1),
        "{}",
        run.stderr
    );
    assert_eq!(run.errors()[0]["identifier"], "p9");
    assert!(sb.stats().status(400) >= 2, "halving answered 400s");
}

#[test]
fn the_ledger_skips_unchanged_objects_and_relationships_and_resends_a_changed_one() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "companies.csv", COMPANIES);
    write(dir.path(), "memberships.csv", MEMBERSHIPS);
    for (file, args) in [
        (
            "companies.csv",
            objects_args("companies.csv", "batch", &["--state", "state.db"]),
        ),
        (
            "memberships.csv",
            relationship_args("memberships.csv", "batch", &["--state", "state.db"]),
        ),
    ] {
        let first = sb.import(dir.path(), &args);
        assert_eq!(
            (first.n("sent"), first.n("skipped")),
            (first.n("rows"), 0),
            "{file}"
        );
        let again = sb.import(dir.path(), &args);
        assert_eq!(
            (again.n("sent"), again.n("skipped")),
            (0, first.n("rows")),
            "{file}"
        );
    }
    let before = sb.stats().operations;
    // One object and one relationship change.
    write(
        dir.path(),
        "companies.csv",
        COMPANIES.replace("Globex,pro", "Globex,enterprise"),
    );
    write(
        dir.path(),
        "memberships.csv",
        MEMBERSHIPS.replace("u2,acme,member", "u2,acme,admin"),
    );
    let run = sb.import(
        dir.path(),
        &objects_args("companies.csv", "batch", &["--state", "state.db"]),
    );
    assert_eq!((run.n("sent"), run.n("skipped")), (1, 2));
    assert_eq!(objects(&sb)["globex"].0["plan"], "enterprise");
    let run = sb.import(
        dir.path(),
        &relationship_args("memberships.csv", "batch", &["--state", "state.db"]),
    );
    assert_eq!((run.n("sent"), run.n("skipped")), (1, 3));
    assert_eq!(sb.stats().operations, before + 2);
    assert_eq!(
        objects(&sb)["acme"].1[1],
        ("u2".to_string(), json!({"role": "admin"}))
    );

    // A deleted object is forgotten (with its relationships): the next sync sends them again.
    write(dir.path(), "gone.csv", "object_id\nacme\n");
    let run = sb.import(
        dir.path(),
        &objects_args(
            "gone.csv",
            "batch",
            &["--action", "delete", "--yes", "--state", "state.db"],
        ),
    );
    assert_eq!(run.n("sent"), 1);
    let run = sb.import(
        dir.path(),
        &objects_args("companies.csv", "batch", &["--state", "state.db"]),
    );
    assert_eq!((run.n("sent"), run.n("skipped")), (1, 2));
    let run = sb.import(
        dir.path(),
        &relationship_args("memberships.csv", "batch", &["--state", "state.db"]),
    );
    assert_eq!(
        (run.n("sent"), run.n("skipped")),
        (2, 2),
        "u1 and u2 to acme again"
    );
}

#[test]
fn an_unknown_outcome_leaves_no_claim_and_a_ledger_from_before_objects_is_migrated() {
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    write(dir.path(), "companies.csv", COMPANIES);
    // A ledger as an older version wrote it: people only, no objects tables.
    let sb = plain();
    assert_eq!(
        sb.import(dir.path(), &["people.csv", "--state", "state.db"])
            .code,
        0
    );
    {
        let c = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
        c.execute_batch("DROP TABLE objects; DROP TABLE relationships;")
            .unwrap();
    }
    // Every request fails: nothing may be claimed.
    let down = sandbox(SandboxConfig {
        fail_rate: 1.0,
        ..SandboxConfig::plain()
    });
    let run = down.import(
        dir.path(),
        &objects_args(
            "companies.csv",
            "batch",
            &["--state", "state.db", "--max-retries", "0"],
        ),
    );
    assert_eq!(run.n("exhausted"), 3, "{}", run.stderr);
    let run = sb.import(
        dir.path(),
        &objects_args("companies.csv", "batch", &["--state", "state.db"]),
    );
    assert_eq!((run.n("sent"), run.n("skipped")), (3, 0), "{}", run.stderr);
    let run = sb.import(
        dir.path(),
        &objects_args("companies.csv", "batch", &["--state", "state.db"]),
    );
    assert_eq!(run.n("skipped"), 3);
    let out = std::process::Command::new(bin())
        .args(["state", "state.db"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 objects and 0 relationships"), "{text}");
}

#[test]
fn limits_are_checked_at_the_row_and_name_line_and_field() {
    let sb = plain();
    let dir = tempdir();
    let long_id = "x".repeat(151);
    let long_value = "v".repeat(1001);
    write(
        dir.path(),
        "companies.csv",
        format!("object_id,name\nok,Fine\n{long_id},Long\n,Empty\nbig,{long_value}\n"),
    );
    let run = sb.import(dir.path(), &objects_args("companies.csv", "batch", &[]));
    assert_eq!((run.n("sent"), run.n("invalid")), (1, 3), "{}", run.stderr);
    let e = run.errors();
    assert_eq!(e[0]["line"], "3");
    assert!(
        e[0]["message"].contains("object id in 'object_id' is 151 bytes"),
        "{:?}",
        e[0]
    );
    assert_eq!(e[1]["line"], "4");
    assert!(
        e[1]["message"].contains("object id column 'object_id' is empty"),
        "{:?}",
        e[1]
    );
    assert_eq!(e[2]["line"], "5");
    assert!(
        e[2]["message"].contains("'name' is 1001 bytes"),
        "{:?}",
        e[2]
    );

    write(
        dir.path(),
        "memberships.csv",
        format!(
            "id,object_id,role\nu1,ok,admin\nu1,{long_id},admin\nu2,ok,{long_value}\nu3,,admin\n"
        ),
    );
    let run = sb.import(dir.path(), &relationship_args("memberships.csv", "v1", &[]));
    assert_eq!((run.n("sent"), run.n("invalid")), (1, 3), "{}", run.stderr);
    let e = run.errors();
    assert!(e[0]["message"].contains("151 bytes"), "{:?}", e[0]);
    assert!(e[1]["message"].contains("'role'"), "{:?}", e[1]);
    assert_eq!(e[2]["line"], "5");
    assert!(e[2]["message"].contains("--object-id-column"), "{:?}", e[2]);
    // One batch of objects before, one relationship alone to /api/v2/entity now.
    assert_eq!(sb.stats().requests, 2);

    // Options: a type id is required and must be one; objects take identify or delete.
    for (args, needle) in [
        (
            vec!["companies.csv", "--kind", "objects"],
            "--object-type-id",
        ),
        (
            vec![
                "companies.csv",
                "--kind",
                "objects",
                "--object-type-id",
                "companies",
            ],
            "not an object type id",
        ),
        (
            vec![
                "companies.csv",
                "--kind",
                "objects",
                "--object-type-id",
                "1",
                "--action",
                "suppress",
            ],
            "identify (the default) or delete",
        ),
        (
            vec![
                "companies.csv",
                "--kind",
                "objects",
                "--object-type-id",
                "1",
                "--object-id-column",
                "nope",
            ],
            "--object-id-column",
        ),
        (
            vec![
                "companies.csv",
                "--kind",
                "objects",
                "--object-type-id",
                "1",
                "--id-column",
                "name",
            ],
            "drop --id-column",
        ),
    ] {
        let run = sb.import(dir.path(), &args);
        assert_ne!(run.code, 0, "{args:?}");
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn deleting_objects_or_relationships_needs_a_confirmation_and_respects_the_cap() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "companies.csv", COMPANIES);
    write(dir.path(), "memberships.csv", MEMBERSHIPS);
    sb.import(dir.path(), &objects_args("companies.csv", "batch", &[]));
    let requests = sb.stats().requests;
    let run = sb.import(
        dir.path(),
        &objects_args("companies.csv", "batch", &["--action", "delete"]),
    );
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("delete: 3 objects in companies.csv"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("first: acme, globex, initech"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    let run = sb.import(
        dir.path(),
        &objects_args(
            "companies.csv",
            "batch",
            &["--action", "delete", "--yes", "--max-deletes", "2"],
        ),
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("more than --max-deletes 2"),
        "{}",
        run.stderr
    );
    let run = sb.import(
        dir.path(),
        &relationship_args("memberships.csv", "batch", &["--action", "delete"]),
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("delete: 4 relationships"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("u1 -> acme"), "{}", run.stderr);
    let run = sb.import(
        dir.path(),
        &objects_args(
            "companies.csv",
            "batch",
            &["--action", "delete", "--dry-run"],
        ),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(sb.stats().requests, requests, "nothing was sent");
    assert_eq!(sb.sb.objects().len(), 3);
}

#[test]
fn presets_imply_the_kind_and_the_object_id() {
    let sb = plain();
    let dir = tempdir();
    write(
        dir.path(),
        "companies.csv",
        "Record ID,Company name,Company Domain Name,Create Date,Industry,Number of Employees\n\
         9001,Acme Corp,acme.example,2020-01-10 10:00,Software,50\n",
    );
    let run = sb.import(
        dir.path(),
        &[
            "companies.csv",
            "--preset",
            "hubspot-companies",
            "--object-type-id",
            "3",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        objects(&sb)["9001"].0,
        json!({"name": "Acme Corp", "domain": "acme.example", "created_at": 1578650400,
            "industry": "Software", "number_of_employees": "50"})
    );
    write(
        dir.path(),
        "contacts.csv",
        "Record ID,First Name,Email,Primary Associated Company ID,Associated Company IDs\n\
         1,Ana,ana@example.com,9001,9001;9002\n2,Bo,bo@example.com,,\n",
    );
    let run = sb.import(
        dir.path(),
        &[
            "contacts.csv",
            "--preset",
            "hubspot-associations",
            "--object-type-id",
            "3",
        ],
    );
    assert_eq!((run.n("sent"), run.n("invalid")), (1, 1), "{}", run.stderr);
    let o = objects(&sb);
    assert_eq!(
        o["9001"].1,
        vec![("ana@example.com".to_string(), json!({}))]
    );

    write(
        dir.path(),
        "intercom.jsonl",
        r#"{"id":"5f1","company_id":"co-1","name":"Acme","created_at":1577836800,"monthly_spend":"49.5","size":"12","custom_attributes":{"tier":"gold"}}
"#,
    );
    let run = sb.import(
        dir.path(),
        &[
            "intercom.jsonl",
            "--preset",
            "intercom-companies",
            "--object-type-id",
            "3",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        objects(&sb)["co-1"].0,
        json!({"intercom_id": "5f1", "name": "Acme", "created_at": 1577836800,
            "monthly_spend": 49.5, "size": 12, "tier": "gold"})
    );
}

#[test]
fn inspect_shows_what_would_be_sent() {
    let dir = tempdir();
    write(
        dir.path(),
        "memberships.csv",
        format!("{MEMBERSHIPS}u4,,admin\n"),
    );
    let out = std::process::Command::new(bin())
        .current_dir(dir.path())
        .args([
            "inspect",
            "memberships.csv",
            "--kind",
            "relationships",
            "--object-type-id",
            "3",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            "relationships: 4 of 5 rows convert: 4 relationships between 3 people and 3 objects"
        ),
        "{text}"
    );
    assert!(
        text.contains("line 6: object id 'object_id' is missing"),
        "{text}"
    );
    assert!(text.contains(r#""action":"add_relationships""#), "{text}");
}

#[test]
fn deleting_a_person_the_ledger_never_identified_forgets_their_relationships() {
    // Before objects, a person deletion forgot only people the ledger knew; a person known
    // only through relationships kept them claimed after Customer.io removed them.
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "memberships.csv", MEMBERSHIPS);
    let args = relationship_args("memberships.csv", "batch", &["--state", "state.db"]);
    assert_eq!(sb.import(dir.path(), &args).n("sent"), 4);
    write(dir.path(), "bye.csv", "id\nu2\n");
    let run = sb.import(
        dir.path(),
        &[
            "bye.csv", "--action", "delete", "--yes", "--state", "state.db",
        ],
    );
    assert_eq!(run.n("sent"), 1, "{}", run.stderr);
    let run = sb.import(dir.path(), &args);
    assert_eq!(
        (run.n("sent"), run.n("skipped")),
        (2, 2),
        "u2's two relationships again"
    );
}

#[test]
fn rows_about_one_object_or_one_person_keep_file_order_in_flight() {
    // 40 rows, each its own request, 8 in flight: the last row of each object or person
    // must be the one that lands.
    let sb = sandbox(SandboxConfig {
        latency: std::time::Duration::from_millis(5),
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    let companies = numbered_csv("object_id,step", 40, |i| format!("c{},{i}", i % 2));
    let memberships = numbered_csv("id,object_id,step", 40, |i| format!("p{},c0,{i}", i % 2));
    write(dir.path(), "companies.csv", &companies);
    write(dir.path(), "memberships.csv", &memberships);
    let fast = ["--batch-size", "1", "--concurrency", "8"];
    let run = sb.import(dir.path(), &objects_args("companies.csv", "batch", &fast));
    assert_eq!(run.n("sent"), 40, "{}", run.stderr);
    let run = sb.import(
        dir.path(),
        &relationship_args("memberships.csv", "v1", &fast),
    );
    assert_eq!(run.n("sent"), 40, "{}", run.stderr);
    let got = objects(&sb);
    let last = |parity: usize| {
        (0..40)
            .filter(|i| i % 2 == parity)
            .max()
            .unwrap()
            .to_string()
    };
    assert_eq!(got["c0"].0["step"], last(0));
    assert_eq!(got["c1"].0["step"], last(1));
    let people: Vec<(String, Value)> = got["c0"].1.clone();
    assert_eq!(
        people,
        vec![
            ("p0".to_string(), json!({"step": last(0)})),
            ("p1".to_string(), json!({"step": last(1)}))
        ]
    );
}

#[test]
fn a_dry_run_of_objects_never_previews_them_as_people() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    assert_eq!(
        sb.import(dir.path(), &["people.csv", "--state", "state.db"])
            .n("sent"),
        3
    );
    write(dir.path(), "companies.csv", COMPANIES);
    let args = objects_args("companies.csv", "batch", &["--state", "state.db"]);
    assert_eq!(sb.import(dir.path(), &args).n("sent"), 3);
    write(
        dir.path(),
        "companies.csv",
        COMPANIES.replace("Globex,pro", "Globex,enterprise"),
    );
    let dry = objects_args(
        "companies.csv",
        "batch",
        &["--state", "state.db", "--dry-run"],
    );
    let run = sb.import(dir.path(), &dry);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        !all.contains("absent") && !all.contains("people in the state file"),
        "{all}"
    );
    // No people preview: said so, and the dry run converts every row.
    assert!(
        all.contains("no preview against the state file for --kind objects"),
        "{all}"
    );
    assert_eq!((run.n("rows"), run.n("invalid")), (3, 0), "{all}");
    // --max-change counts people: refused for objects, with why.
    let capped = objects_args(
        "companies.csv",
        "batch",
        &["--state", "state.db", "--max-change", "10"],
    );
    let run = sb.import(dir.path(), &capped);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("--max-change compares an export of people")
            && run.stderr.contains("--kind objects"),
        "{}",
        run.stderr
    );
}

#[test]
fn object_files_name_their_options_type_monthly_spend_and_refuse_update() {
    let sb = plain();
    let dir = tempdir();
    // Intercom's CSV header "Monthly Spend" is a number, as company_id's JSONL monthly_spend.
    write(
        dir.path(),
        "companies.csv",
        "company_id,name,Monthly Spend\nc1,Acme,3\nc2,Globex,12.5\n",
    );
    let run = sb.import(
        dir.path(),
        &[
            "companies.csv",
            "--preset",
            "intercom-companies",
            "--object-type-id",
            "3",
        ],
    );
    assert_eq!(run.n("sent"), 2, "{}", run.stderr);
    let o = objects(&sb);
    assert!(o["c1"].0["monthly_spend"].is_number(), "{:?}", o["c1"]);
    assert_eq!(o["c2"].0["monthly_spend"].as_f64(), Some(12.5));
    // A missing object id names --object-id-column; an _update column costs its row.
    write(
        dir.path(),
        "more.jsonl",
        "{\"name\":\"Nameless\"}\n{\"object_id\":\"d1\",\"_update\":true}\n\
         {\"object_id\":\"d2\",\"name\":\"Hooli\"}\n",
    );
    let run = sb.import(dir.path(), &objects_args("more.jsonl", "batch", &[]));
    assert_eq!((run.n("sent"), run.n("invalid")), (1, 2), "{}", run.stderr);
    let errors = std::fs::read_to_string(run.dir.join("errors.csv")).unwrap_or_default();
    let all = format!("{}{errors}", run.stderr);
    assert!(
        all.contains("--object-id-column") && !all.contains("--id-column "),
        "{all}"
    );
    assert!(all.contains("_update is a flag of people"), "{all}");
    assert!(!objects(&sb).contains_key("d1"));
}
