//! `--kind devices` and `--kind merges`: devices through both APIs onto their people, deletes
//! behind the confirmation, 207s and bisection per kind, the ledger's skip of unchanged
//! devices; merges behind `--yes`, listed by a dry run, capped, a same-person pair invalid at
//! its line; the sandbox's merge (attributes, devices, events, the secondary gone); the
//! ledger forgetting merged people; `inspect --suggest-merges` writing a merges file that
//! imports; Braze push tokens through the documented `jq` one-liner.

mod common;

use cio_import::sandbox::SandboxConfig;
use common::*;
use serde_json::{json, Value};

const DEVICES: &str = "\
id,token,platform,last_used,app_version
u1,tok-a,ios,2024-05-01T12:00:00Z,5.2
u1,tok-b,Android,1714564800,5.1
u2,tok-c,IOS,,
u3,tok-d,web,,
";

/// The devices of `id`, by token (devices of one person travel in parallel: their order of
/// arrival is not the file's).
fn devices_of(sb: &Sb, id: &str) -> Vec<Value> {
    let mut v: Vec<Value> = sb
        .people()
        .get(id)
        .map(|p| {
            p.devices
                .iter()
                .map(|d| serde_json::to_value(d).unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a["token"].as_str().cmp(&b["token"].as_str()));
    v
}

#[test]
fn devices_land_on_their_people_through_both_apis() {
    for api in ["v1", "batch"] {
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), "devices.csv", DEVICES);
        let run = sb.import(
            dir.path(),
            &["devices.csv", "--kind", "devices", "--api", api],
        );
        assert_eq!(run.code, 2, "{api}: {}", run.stderr);
        assert_eq!(
            (run.n("rows"), run.n("sent"), run.n("invalid")),
            (4, 3, 1),
            "{api}"
        );
        let errs = run.errors();
        assert_eq!(errs[0]["line"], "5", "{api}");
        assert!(
            errs[0]["message"].contains("'web' is not ios or android"),
            "{errs:?}"
        );
        let st = sb.stats();
        assert_eq!(st.action("add_device"), 3, "{api}");
        assert_eq!(st.action("identify"), 0, "{api}");
        assert!(st.violations.is_empty(), "{api}: {:?}", st.violations);
        assert_eq!(
            devices_of(&sb, "u1"),
            vec![
                json!({"token":"tok-a","platform":"ios","last_used":1_714_564_800,"attributes":{"app_version":"5.2"}}),
                json!({"token":"tok-b","platform":"android","last_used":1_714_564_800,"attributes":{"app_version":"5.1"}}),
            ],
            "{api}: platform lower case, last_used in seconds, other columns as attributes"
        );
        assert_eq!(
            devices_of(&sb, "u2"),
            vec![json!({"token":"tok-c","platform":"ios","last_used":null})],
            "{api}"
        );
    }
}

#[test]
fn deleting_devices_needs_yes_and_removes_only_them() {
    for api in ["v1", "batch"] {
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), "devices.csv", DEVICES);
        sb.import(
            dir.path(),
            &["devices.csv", "--kind", "devices", "--api", api],
        );
        write(
            dir.path(),
            "gone.csv",
            "id,token\nu1,tok-a\nu1,tok/with slash\n",
        );
        let args = [
            "gone.csv", "--kind", "devices", "--action", "delete", "--api", api,
        ];
        let run = sb.import(dir.path(), &args);
        assert_eq!(run.code, 1, "{api}: {}", run.stderr);
        assert!(
            run.stderr.contains("would delete_device 2 devices") && run.stderr.contains("--yes"),
            "{api}: {}",
            run.stderr
        );
        assert_eq!(sb.stats().action("delete_device"), 0, "{api}: nothing sent");
        let mut yes = args.to_vec();
        yes.push("--yes");
        let run = sb.import(dir.path(), &yes);
        assert_eq!(run.code, 0, "{api}: {}", run.stderr);
        assert_eq!(sb.stats().action("delete_device"), 2, "{api}");
        assert!(
            sb.stats().violations.is_empty(),
            "{:?}",
            sb.stats().violations
        );
        let left: Vec<String> = devices_of(&sb, "u1")
            .iter()
            .map(|d| d["token"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(left, ["tok-b"], "{api}");
    }
}

#[test]
fn a_207_and_bisection_cost_only_the_refused_device() {
    let sb = sandbox(SandboxConfig {
        reject_ids: vec!["u2".into()],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "devices.csv", DEVICES);
    let run = sb.import(dir.path(), &["devices.csv", "--kind", "devices"]);
    assert_eq!(
        (run.n("sent"), run.n("rejected"), run.n("requests")),
        (2, 1, 1)
    );
    assert_eq!(
        run.errors().iter().find(|e| e["status"] == "207").unwrap()["line"],
        "4"
    );

    let sb = sandbox(SandboxConfig {
        poison_ids: vec!["p17".into()],
        ..SandboxConfig::plain()
    });
    let csv = numbered_csv("id,token,platform", 40, |i| format!("p{i},t{i},ios"));
    write(dir.path(), "many.csv", csv);
    let run = sb.import(dir.path(), &["many.csv", "--kind", "devices"]);
    assert_eq!(
        (run.n("sent"), run.n("rejected")),
        (39, 1),
        "{}",
        run.stderr
    );
    assert!(run.n("requests") > 2, "bisection takes several requests");
    assert_eq!(run.errors()[0]["identifier"], "p17");
    assert_eq!(sb.stats().action("add_device"), 39);
}

#[test]
fn the_ledger_skips_unchanged_devices_and_a_delete_forgets() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "devices.csv", DEVICES);
    let args = ["devices.csv", "--kind", "devices", "--state", "state.db"];
    let first = sb.import(dir.path(), &args);
    assert_eq!(first.n("sent"), 3);
    let again = sb.import(dir.path(), &args);
    assert_eq!(
        (again.n("sent"), again.n("skipped"), again.n("invalid")),
        (0, 3, 1),
        "unchanged devices are skipped"
    );
    assert_eq!(sb.stats().action("add_device"), 3);
    // A changed device (its platform), and the same token on another person, are sent.
    write(
        dir.path(),
        "devices.csv",
        DEVICES
            .replace("u1,tok-b,Android", "u1,tok-b,ios")
            .replace("u2,tok-c", "u9,tok-c"),
    );
    let changed = sb.import(dir.path(), &args);
    assert_eq!((changed.n("sent"), changed.n("skipped")), (2, 1));
    // A delete forgets: the same device is sent again afterwards.
    write(dir.path(), "gone.csv", "id,token\nu1,tok-a\n");
    let del = sb.import(
        dir.path(),
        &[
            "gone.csv", "--kind", "devices", "--action", "delete", "--yes", "--state", "state.db",
        ],
    );
    assert_eq!(del.n("sent"), 1, "{}", del.stderr);
    let after = sb.import(dir.path(), &args);
    assert_eq!((after.n("sent"), after.n("skipped")), (1, 2));
    assert_eq!(devices_of(&sb, "u1").len(), 2);
}

/// u1 (id) and ann@x.io (email) are the same person twice; u2 and bob@x.io too.
fn two_duplicates(sb: &Sb, dir: &std::path::Path) {
    write(
        dir,
        "people.csv",
        "id,name,city,plan\nu1,Ann,,basic\nu2,Bob,Rome,\n",
    );
    assert_eq!(sb.import(dir, &["people.csv"]).code, 0);
    write(
        dir,
        "dupes.csv",
        "email,name,city,plan\nann@x.io,Annie,Oslo,pro\nbob@x.io,Bobby,,gold\n",
    );
    assert_eq!(
        sb.import(
            dir,
            &[
                "dupes.csv",
                "--identify-by",
                "email",
                "--id-column",
                "email"
            ]
        )
        .code,
        0
    );
    write(
        dir,
        "devices.csv",
        "email,token,platform\nann@x.io,tok-ann,ios\n",
    );
    let d = sb.import(
        dir,
        &[
            "devices.csv",
            "--kind",
            "devices",
            "--identify-by",
            "email",
            "--id-column",
            "email",
        ],
    );
    assert_eq!(d.n("sent"), 1, "{}", d.stderr);
    write(
        dir,
        "events.csv",
        "email,name,timestamp\nann@x.io,opened,1700000000\n",
    );
    let e = sb.import(
        dir,
        &[
            "events.csv",
            "--kind",
            "events",
            "--identify-by",
            "email",
            "--id-column",
            "email",
        ],
    );
    assert_eq!(e.n("sent"), 1, "{}", e.stderr);
}

const MERGES: &str = "primary_id,secondary_email\nu1,ann@x.io\nu2,bob@x.io\n";

#[test]
fn the_sandbox_applies_a_merge_through_both_apis() {
    for api in ["v1", "batch"] {
        let sb = plain();
        let dir = tempdir();
        two_duplicates(&sb, dir.path());
        write(dir.path(), "merges.csv", MERGES);
        let run = sb.import(
            dir.path(),
            &["merges.csv", "--kind", "merges", "--yes", "--api", api],
        );
        assert_eq!((run.code, run.n("sent")), (0, 2), "{api}: {}", run.stderr);
        let st = sb.stats();
        assert_eq!((st.action("merge"), st.ignored_merges), (2, 0), "{api}");
        assert!(st.violations.is_empty(), "{api}: {:?}", st.violations);
        let people = sb.people();
        assert!(!people.contains_key("ann@x.io") && !people.contains_key("bob@x.io"));
        // The primary keeps its values and gains what it lacks (unset or empty).
        assert_eq!(
            person(&sb, "u1"),
            json!({"name":"Ann","city":"Oslo","plan":"basic"}),
            "{api}"
        );
        assert_eq!(
            person(&sb, "u2"),
            json!({"name":"Bob","city":"Rome","plan":"gold"}),
            "{api}"
        );
        let u1 = &people["u1"];
        assert_eq!(u1.devices.len(), 1, "{api}: the device moved");
        assert_eq!(u1.devices[0].token, "tok-ann");
        assert_eq!(u1.events.len(), 1, "{api}: the event moved");
        // A merge whose primary does not exist changes nothing.
        write(
            dir.path(),
            "ghost.csv",
            "primary_id,secondary_id\nnobody,u2\n",
        );
        let run = sb.import(
            dir.path(),
            &["ghost.csv", "--kind", "merges", "--yes", "--api", api],
        );
        assert_eq!(run.n("sent"), 1);
        assert_eq!(sb.stats().ignored_merges, 1);
        assert!(sb.people().contains_key("u2"));
    }
}

#[test]
fn merges_need_yes_a_dry_run_lists_them_and_the_cap_holds() {
    let sb = plain();
    let dir = tempdir();
    two_duplicates(&sb, dir.path());
    write(dir.path(), "merges.csv", MERGES);
    let run = sb.import(dir.path(), &["merges.csv", "--kind", "merges"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("--kind merges would make 2 merges") && run.stderr.contains("--yes"),
        "{}",
        run.stderr
    );
    let dry = sb.import(dir.path(), &["merges.csv", "--kind", "merges", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stderr.contains("merge: 2 merges in merges.csv")
            && dry
                .stderr
                .contains("line 2: merge email ann@x.io into id u1")
            && dry
                .stderr
                .contains("line 3: merge email bob@x.io into id u2"),
        "{}",
        dry.stderr
    );
    let capped = sb.import(
        dir.path(),
        &[
            "merges.csv",
            "--kind",
            "merges",
            "--yes",
            "--max-merges",
            "1",
        ],
    );
    assert_eq!(capped.code, 1);
    assert!(
        capped.stderr.contains("more than --max-merges 1"),
        "{}",
        capped.stderr
    );
    assert_eq!(sb.stats().action("merge"), 0, "nothing was merged");
    assert_eq!(sb.people().len(), 4);
}

#[test]
fn a_pair_of_the_same_person_is_invalid_at_its_line() {
    let sb = plain();
    let dir = tempdir();
    write(
        dir.path(),
        "merges.csv",
        "primary_email,secondary_email\na@x.io,b@x.io\nC@X.io,c@x.IO\n",
    );
    let run = sb.import(dir.path(), &["merges.csv", "--kind", "merges", "--yes"]);
    assert_eq!((run.n("sent"), run.n("invalid")), (1, 1), "{}", run.stderr);
    let e = &run.errors()[0];
    assert_eq!((e["line"].as_str(), e["class"].as_str()), ("3", "invalid"));
    assert!(e["message"].contains("same person"), "{e:?}");
}

#[test]
fn a_207_and_bisection_cost_only_the_refused_merge() {
    let csv = numbered_csv("primary_id,secondary_id", 20, |i| format!("p{i},s{i}"));
    let dir = tempdir();
    write(dir.path(), "merges.csv", &csv);
    let sb = sandbox(SandboxConfig {
        reject_ids: vec!["s3".into()],
        ..SandboxConfig::plain()
    });
    let run = sb.import(
        dir.path(),
        &[
            "merges.csv",
            "--kind",
            "merges",
            "--yes",
            "--batch-size",
            "50",
        ],
    );
    assert_eq!(
        (run.n("sent"), run.n("rejected"), run.n("requests")),
        (19, 1, 1)
    );
    assert_eq!(run.errors()[0]["line"], "5");
    let sb = sandbox(SandboxConfig {
        poison_ids: vec!["s11".into()],
        ..SandboxConfig::plain()
    });
    let run = sb.import(
        dir.path(),
        &[
            "merges.csv",
            "--kind",
            "merges",
            "--yes",
            "--batch-size",
            "50",
        ],
    );
    assert_eq!(
        (run.n("sent"), run.n("rejected")),
        (19, 1),
        "{}",
        run.stderr
    );
    assert!(run.n("requests") > 2, "bisection takes several requests");
    // Without --batch-size, merges travel one per request, in file order.
    let sb = plain();
    let run = sb.import(dir.path(), &["merges.csv", "--kind", "merges", "--yes"]);
    assert_eq!((run.n("sent"), run.n("requests")), (20, 20));
}

#[test]
fn a_merge_makes_the_ledger_forget_both_people() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "people.csv", "id,name\nu1,Ann\nu2,Bob\nu3,Cy\n");
    let sync = ["people.csv", "--state", "state.db"];
    assert_eq!(sb.import(dir.path(), &sync).n("sent"), 3);
    assert_eq!(sb.import(dir.path(), &sync).n("skipped"), 3);
    write(dir.path(), "merges.csv", "primary_id,secondary_id\nu1,u2\n");
    let m = sb.import(
        dir.path(),
        &[
            "merges.csv",
            "--kind",
            "merges",
            "--yes",
            "--state",
            "state.db",
        ],
    );
    assert_eq!(m.n("sent"), 1, "{}", m.stderr);
    assert!(!sb.people().contains_key("u2"));
    // The primary (changed) and the secondary (gone) are sent again; u3 is still skipped.
    let after = sb.import(dir.path(), &sync);
    assert_eq!(
        (after.n("sent"), after.n("skipped")),
        (2, 1),
        "{}",
        after.stderr
    );
    assert!(
        sb.people().contains_key("u2"),
        "u2 is recreated by the sync"
    );
}

#[test]
fn inspect_suggests_merges_that_import_as_a_merges_file() {
    let sb = plain();
    let dir = tempdir();
    write(
        dir.path(),
        "people.csv",
        "id,email,name\nu1,ann@x.io,Ann\nu2,bob@x.io,Bob\nu3,ANN@x.io,Annie\nu4,,Dan\nu5,ann@x.io,A.\nu1,ann@x.io,Ann\n",
    );
    assert_eq!(sb.import(dir.path(), &["people.csv"]).n("sent"), 6);
    let out = std::process::Command::new(bin())
        .current_dir(dir.path())
        .args(["inspect", "people.csv", "--suggest-merges", "merges.csv"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("duplicates: 1 email carried by more than one id ('email' by 'id'): 2 merges suggested in merges.csv"),
        "{stdout}"
    );
    let path = dir.path().join("merges.csv");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "primary_id,secondary_id\nu1,u3\nu1,u5\n"
    );
    #[cfg(unix)]
    assert_eq!(mode(&path) & 0o777, 0o600);
    let report = std::process::Command::new(bin())
        .current_dir(dir.path())
        .args(["inspect", "merges.csv", "--kind", "merges"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(
        text.contains("2 rows; 2 merges would be sent, 0 rows are invalid")
            && text.contains("line 2: merge id u3 into id u1"),
        "{text}"
    );
    let run = sb.import(dir.path(), &["merges.csv", "--kind", "merges", "--yes"]);
    assert_eq!((run.code, run.n("sent")), (0, 2), "{}", run.stderr);
    let people = sb.people();
    assert!(!people.contains_key("u3") && !people.contains_key("u5"));
    assert_eq!(person(&sb, "u1")["name"], "Ann");
}

/// The README's one-liner: Braze's push tokens (several on one line) to a devices CSV.
const BRAZE_JQ: &str = r#"jq -rn '["id","token","platform","app","device_id","push_enabled"], (inputs | select(.external_id != null) | .external_id as $id | .push_tokens[]? | [$id, .token, .platform, .app, .device_id, (.notifications_enabled | tostring)]) | @csv'"#;

#[test]
fn braze_push_tokens_become_devices_through_the_jq_one_liner() {
    if std::process::Command::new("jq")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("jq is not installed: the Braze one-liner is not tested here");
        return;
    }
    let dir = tempdir();
    let export = concat!(
        r#"{"external_id":"b1","email":"a@x.io","push_tokens":[{"app":"Shop","platform":"iOS","token":"apns-1","device_id":"D1","notifications_enabled":true},{"app":"Shop","platform":"Android","token":"fcm-1","device_id":"D2","notifications_enabled":false}]}"#,
        "\n",
        r#"{"external_id":"b2","email":"b@x.io"}"#,
        "\n",
        r#"{"external_id":null,"braze_id":"x","push_tokens":[{"platform":"iOS","token":"anon"}]}"#,
        "\n"
    );
    write(dir.path(), "users.jsonl.gz", gzip(export.as_bytes()));
    let st = std::process::Command::new("sh")
        .current_dir(dir.path())
        .arg("-c")
        .arg(format!(
            "gzip -dc users.jsonl.gz | {BRAZE_JQ} > devices.csv"
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let sb = plain();
    let run = sb.import(dir.path(), &["devices.csv", "--kind", "devices"]);
    assert_eq!(
        (run.code, run.n("rows"), run.n("sent")),
        (0, 2, 2),
        "{}",
        run.stderr
    );
    assert_eq!(
        devices_of(&sb, "b1"),
        vec![
            json!({"token":"apns-1","platform":"ios","last_used":null,"attributes":{"app":"Shop","device_id":"D1","push_enabled":"true"}}),
            json!({"token":"fcm-1","platform":"android","last_used":null,"attributes":{"app":"Shop","device_id":"D2","push_enabled":"false"}}),
        ]
    );
}

#[test]
fn the_ledger_forgets_devices_with_their_person_only_when_the_person_goes() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "devices.csv", DEVICES);
    let devices = ["devices.csv", "--kind", "devices", "--state", "state.db"];
    assert_eq!(sb.import(dir.path(), &devices).n("sent"), 3);
    // New attributes for u1: their devices are untouched, so still skipped.
    write(dir.path(), "people.csv", "id,name\nu1,Ann\n");
    let people = sb.import(dir.path(), &["people.csv", "--state", "state.db"]);
    assert_eq!(people.n("sent"), 1);
    write(dir.path(), "people.csv", "id,name\nu1,Annie\n");
    assert_eq!(
        sb.import(dir.path(), &["people.csv", "--state", "state.db"])
            .n("sent"),
        1
    );
    let again = sb.import(dir.path(), &devices);
    assert_eq!(
        (again.n("sent"), again.n("skipped")),
        (0, 3),
        "{}",
        again.stderr
    );
    // u1 deleted: their devices went with them, and are sent again.
    write(dir.path(), "gone.csv", "id\nu1\n");
    let del = sb.import(
        dir.path(),
        &[
            "gone.csv", "--action", "delete", "--yes", "--state", "state.db",
        ],
    );
    assert_eq!(del.n("sent"), 1, "{}", del.stderr);
    let after = sb.import(dir.path(), &devices);
    assert_eq!(
        (after.n("sent"), after.n("skipped")),
        (2, 1),
        "{}",
        after.stderr
    );
}

#[test]
fn a_mirror_removal_forgets_the_persons_relationships_and_devices() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "people.csv", "id,name\n11,A\n12,B\n13,C\n");
    // One feed for the people file and tonight's export (their names differ).
    let people = ["people.csv", "--state", "state.db", "--feed", "crm"];
    assert_eq!(sb.import(dir.path(), &people).n("sent"), 3);
    write(dir.path(), "rel.csv", "id,object_id\n12,acme\n13,acme\n");
    let rel = [
        "rel.csv",
        "--kind",
        "relationships",
        "--object-type-id",
        "1",
        "--state",
        "state.db",
    ];
    assert_eq!(sb.import(dir.path(), &rel).n("sent"), 2);
    write(dir.path(), "dev.csv", "id,token,platform\n12,tok12,ios\n");
    let dev = ["dev.csv", "--kind", "devices", "--state", "state.db"];
    assert_eq!(sb.import(dir.path(), &dev).n("sent"), 1);
    write(dir.path(), "export.csv", "id,name\n11,A\n13,C\n");
    let m = sb.import(
        dir.path(),
        &[
            "export.csv",
            "--state",
            "state.db",
            "--feed",
            "crm",
            "--mirror",
            "delete",
            "--max-removals",
            "50%",
            "--yes",
        ],
    );
    assert_eq!(m.code, 0, "{}", m.stderr);
    assert!(!sb.people().contains_key("12"));
    // 12 comes back: their relationship and device are sent again, 13's is still skipped.
    assert_eq!(sb.import(dir.path(), &people).n("sent"), 1);
    let r = sb.import(dir.path(), &rel);
    assert_eq!((r.n("sent"), r.n("skipped")), (1, 1), "{}", r.stderr);
    assert_eq!(sb.people()["12"].relationships.len(), 1);
    let d = sb.import(dir.path(), &dev);
    assert_eq!((d.n("sent"), d.n("skipped")), (1, 0), "{}", d.stderr);
    assert_eq!(devices_of(&sb, "12").len(), 1);
}

#[test]
fn merging_an_email_forgets_it_under_any_case() {
    let sb = plain();
    let dir = tempdir();
    write(
        dir.path(),
        "people.csv",
        "email,name\nBob@X.io,Bob\nann@x.io,Ann\n",
    );
    let people = [
        "people.csv",
        "--identify-by",
        "email",
        "--state",
        "state.db",
    ];
    assert_eq!(sb.import(dir.path(), &people).n("sent"), 2);
    write(
        dir.path(),
        "dev.csv",
        "email,token,platform\nBob@X.io,tokbob,ios\n",
    );
    let dev = [
        "dev.csv",
        "--kind",
        "devices",
        "--identify-by",
        "email",
        "--state",
        "state.db",
    ];
    assert_eq!(sb.import(dir.path(), &dev).n("sent"), 1);
    assert_eq!(sb.import(dir.path(), &dev).n("skipped"), 1);
    write(
        dir.path(),
        "merges.csv",
        "primary_email,secondary_email\nann@x.io,bob@x.io\n",
    );
    let m = sb.import(
        dir.path(),
        &[
            "merges.csv",
            "--kind",
            "merges",
            "--yes",
            "--state",
            "state.db",
        ],
    );
    assert_eq!(m.n("sent"), 1, "{}", m.stderr);
    // Bob is gone from Customer.io: the ledger claims neither Bob nor his device.
    let again = sb.import(dir.path(), &people);
    assert_eq!(
        (again.n("sent"), again.n("skipped")),
        (2, 0),
        "{}",
        again.stderr
    );
    let d = sb.import(dir.path(), &dev);
    assert_eq!((d.n("sent"), d.n("skipped")), (1, 0), "{}", d.stderr);
}

fn suggest(dir: &std::path::Path, file: &str, more: &[&str]) -> (String, String) {
    let out = std::process::Command::new(bin())
        .current_dir(dir)
        .args(["inspect", file, "--suggest-merges", "merges.csv"])
        .args(more)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        std::fs::read_to_string(dir.join("merges.csv")).unwrap(),
    )
}

#[test]
fn suggested_merges_have_no_chains_and_skip_placeholder_emails() {
    let dir = tempdir();
    // 2 shares a with 1 and b with 3: one person, merged into 1 (not 1<-2 then 2<-3).
    let mut people = String::from("id,email\n1,a@x.io\n2,A@x.io\n2,b@x.io\n3,b@x.io\n");
    for i in 0..12 {
        people += &format!("p{i},none@x.io\n");
    }
    people += "p0,c@x.io\n4,c@x.io\n";
    write(dir.path(), "people.csv", &people);
    let (stdout, merges) = suggest(dir.path(), "people.csv", &[]);
    assert_eq!(merges, "primary_id,secondary_id\n1,2\n1,3\np0,4\n");
    assert!(
        stdout.contains("3 emails carried by more than one id")
            && stdout.contains("3 merges suggested")
            && stdout.contains(
                "1 email carried by more than 10 ids skipped, likely a placeholder: none@x.io"
            ),
        "{stdout}"
    );
}

#[test]
fn suggest_merges_reads_the_file_as_the_import_does() {
    let dir = tempdir();
    // Semicolons (detected), Latin-1 (given), and a ragged row counted, not silently lost.
    let mut bytes = b"id;email;name\n1;a@x.io;Ren\xe9\n2;a@x.io;Zo\xe9\n3;b@x.io\n".to_vec();
    bytes.extend_from_slice(b"4;b@x.io;x;extra\n");
    write(dir.path(), "people.csv", &bytes);
    let (stdout, merges) = suggest(dir.path(), "people.csv", &["--encoding", "iso-8859-1"]);
    assert_eq!(merges, "primary_id,secondary_id\n1,2\n");
    assert!(
        stdout.contains("2 rows could not be read and were skipped"),
        "{stdout}"
    );
}

#[test]
fn a_merge_chain_is_warned_at_its_line() {
    let sb = plain();
    let dir = tempdir();
    write(
        dir.path(),
        "merges.csv",
        "primary_id,secondary_id\n1001,1002\n1002,1003\n1000,1004\n",
    );
    let run = sb.import(dir.path(), &["merges.csv", "--kind", "merges", "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "warning: line 3: the primary id 1002 was merged away at line 2: Customer.io will \
ignore this pair"
        ) && !run.stderr.contains("line 4: the"),
        "{}",
        run.stderr
    );
}
