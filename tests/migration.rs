//! Migrations: each preset's sample into the sandbox, mapping files, types, constants, value
//! maps, nested JSON, update-only, the empty-value policy, `presets` and `inspect`.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;

fn sample(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn every_preset_imports_its_sample() {
    let dir = tempdir();
    let run = |preset: &str, file: &str| {
        let sb = plain();
        let r = sb.import(dir.path(), &[&sample(file), "--preset", preset]);
        assert_eq!(r.code, 0, "{preset}: {}", r.stderr);
        assert!(
            sb.stats().violations.is_empty(),
            "{preset}: {:?}",
            sb.stats().violations
        );
        sb
    };
    // Mailchimp: email identifies, internal ids kept, merge fields snake_cased, unsubscribed file.
    let sb = run("mailchimp", "mailchimp_subscribed.csv");
    let ana = person(&sb, "ana@example.com");
    assert_eq!(sb.people()["ana@example.com"].kind, "email");
    assert_eq!(ana["first_name"], "Ana");
    assert_eq!(ana["favorite_color"], "blue");
    assert_eq!(ana["mailchimp_leid"], "123456");
    assert_eq!(ana["mailchimp_member_rating"], 4);
    assert_eq!(ana["created_at"], 1_551_970_931); // 2019-03-07 15:02:11 UTC
    assert_eq!(ana["latitude"], 38.72);
    assert!(ana.get("unsubscribed").is_none());
    let sb = run("mailchimp", "mailchimp_unsubscribed.csv");
    let cy = person(&sb, "cy@example.com");
    assert_eq!(cy["unsubscribed"], true);
    assert_eq!(cy["unsubscribed_at"], 1_643_767_322);
    // HubSpot: email identifies, Record ID kept.
    let sb = run("hubspot", "hubspot.csv");
    let dana = person(&sb, "dana@example.com");
    assert_eq!(dana["hubspot_record_id"], "101");
    assert_eq!(dana["created_at"], 1_657_791_000); // 2022-07-14 09:30 UTC
    assert_eq!(dana["lifecycle_stage"], "lead");
    // Braze: external_id identifies, custom attributes lifted, subscription mapped.
    let sb = run("braze", "braze.jsonl");
    let fay = person(&sb, "u-1");
    assert_eq!(sb.people()["u-1"].kind, "id");
    assert_eq!(fay["plan"], "pro");
    assert_eq!(fay["seats"], 12);
    assert_eq!(fay["unsubscribed"], false);
    assert_eq!(fay["created_at"], 1_617_602_828);
    assert!(fay.get("custom_events").is_none() && fay.get("devices").is_none());
    assert_eq!(person(&sb, "u-2")["unsubscribed"], true);
    // Klaviyo: consent values, zip codes stay text.
    let sb = run("klaviyo", "klaviyo.csv");
    assert_eq!(person(&sb, "hal@example.com")["unsubscribed"], false);
    assert_eq!(person(&sb, "hal@example.com")["zip"], "02134");
    assert_eq!(person(&sb, "ivy@example.com")["unsubscribed"], true);
    assert_eq!(person(&sb, "jo@example.com")["unsubscribed"], false);
    // Intercom: user_id identifies, the email where it is empty; custom_attributes.plan -> plan.
    let sb = run("intercom", "intercom.csv");
    let kim = person(&sb, "app-7");
    assert_eq!(sb.people()["app-7"].kind, "id");
    assert_eq!(kim["intercom_id"], "63f0");
    assert_eq!(kim["created_at"], 1_600_000_100);
    assert_eq!(kim["session_count"], 42);
    assert_eq!(kim["unsubscribed"], false);
    assert_eq!(kim["plan"], "pro");
    let lou = sb.people()["lou@example.com"].clone();
    assert_eq!(lou.kind, "email");
    assert_eq!(lou.attributes["unsubscribed"], true);
    // SendGrid and Brevo.
    let sb = run("sendgrid", "sendgrid.csv");
    assert_eq!(person(&sb, "max@example.com")["region"], "BE");
    assert_eq!(person(&sb, "max@example.com")["created_at"], 1_646_370_367);
    let sb = run("brevo", "brevo.csv");
    let ola = person(&sb, "ola@example.com");
    assert_eq!(ola["created_at"], 1_551_970_920); // 07-03-2019 15:02 UTC
    assert_eq!(ola["unsubscribed"], false);
    assert_eq!(person(&sb, "pia@example.com")["unsubscribed"], true);
}

#[test]
fn identify_by_overrides_the_preset() {
    let sb = plain();
    let dir = tempdir();
    let r = sb.import(
        dir.path(),
        &[
            &sample("hubspot.csv"),
            "--preset",
            "hubspot",
            "--identify-by",
            "id",
            "--id-column",
            "hubspot_record_id",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sb.people()["101"].kind, "id");
    assert_eq!(sb.people()["101"].attributes["email"], "dana@example.com");
}

const MAPPING: &str = r#"
[options]
identify_by = "email"
id_column = "email"

[columns."E-Mail"]
rename = "email"
[columns."First Name"]
rename = "first_name"
[columns.Internal]
drop = true
[columns.Age]
type = "integer"
[columns.Score]
type = "float"
[columns.VIP]
rename = "vip"
type = "bool"
[columns.Joined]
rename = "created_at"
type = "timestamp"
format = "%d/%m/%Y %H:%M"
timezone = "America/New_York"
[columns.Prefs]
rename = "prefs"
type = "json"
[columns.Consent]
rename = "unsubscribed"
values = { "opted in" = false, "opted out" = true }

[constants]
source = "legacy-crm"
"#;

#[test]
fn a_mapping_file_renames_drops_types_and_adds_constants() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "m.toml", MAPPING);
    write(
        dir.path(),
        "in.csv",
        "E-Mail,First Name,Internal,Age,Score,VIP,Joined,Prefs,Consent,Other Column\n\
a@x.io,Ann,secret,41,9.5,yes,14/11/2023 17:13,\"{\"\"lang\"\":\"\"pt\"\"}\",opted out,kept\n\
b@x.io,Bob,,forty,1,no,,,opted in,\n\
c@x.io,Cy,,,,maybe,,,,\n\
d@x.io,Di,,,,,,,perhaps,\n",
    );
    let r = sb.import(dir.path(), &["in.csv", "--mapping", "m.toml"]);
    assert_eq!((r.n("sent"), r.n("invalid")), (1, 3), "{}", r.stderr);
    assert_eq!(
        person(&sb, "a@x.io"),
        json!({"first_name":"Ann","Age":41,"Score":9.5,"vip":true,"created_at":1_699_999_980,
               "prefs":{"lang":"pt"},"unsubscribed":true,"Other Column":"kept","source":"legacy-crm"})
    );
    let msgs: Vec<String> = r
        .errors()
        .into_iter()
        .map(|e| e["message"].clone())
        .collect();
    assert!(
        msgs[0].contains("'Age'") && msgs[0].contains("integer") && msgs[0].contains("'forty'"),
        "{}",
        msgs[0]
    );
    assert!(
        msgs[1].contains("'VIP'") && msgs[1].contains("bool") && msgs[1].contains("'maybe'"),
        "{}",
        msgs[1]
    );
    assert!(
        msgs[2].contains("'Consent'")
            && msgs[2].contains("'perhaps'")
            && msgs[2].contains("opted out"),
        "{}",
        msgs[2]
    );
    // --drop-unmapped keeps only what the mapping names.
    let sb = plain();
    let r = sb.import(
        dir.path(),
        &["in.csv", "--mapping", "m.toml", "--drop-unmapped"],
    );
    assert_eq!(r.n("sent"), 1, "{}", r.stderr);
    assert!(person(&sb, "a@x.io").get("Other Column").is_none());
}

#[test]
fn mapping_mistakes_are_reported_with_the_line_and_the_key() {
    let dir = tempdir();
    write(dir.path(), "in.csv", "id\n1\n");
    write(
        dir.path(),
        "bad.toml",
        "[columns.A]\nrename = \"a\"\n\n[columns.B]\ntype = \"date\"\n",
    );
    let r = import(
        dir.path(),
        Some("http://127.0.0.1:9"),
        &["in.csv", "--mapping", "bad.toml"],
        None,
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("bad.toml") && r.stderr.contains("line 5") && r.stderr.contains("date"),
        "{}",
        r.stderr
    );
    write(
        dir.path(),
        "two.toml",
        "[columns.A]\nrename = \"x\"\n[columns.B]\nrename = \"x\"\n",
    );
    write(dir.path(), "ab.csv", "id,A,B\n1,2,3\n");
    let r = import(
        dir.path(),
        Some("http://127.0.0.1:9"),
        &["ab.csv", "--mapping", "two.toml"],
        None,
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("'A' and 'B' both become the attribute 'x'"),
        "{}",
        r.stderr
    );
}

#[test]
fn jsonl_objects_can_be_flattened_or_kept() {
    let dir = tempdir();
    write(dir.path(), "in.jsonl", "{\"id\":\"1\",\"profile\":{\"name\":\"Ann\",\"address\":{\"city\":\"Porto\"}},\"meta\":{\"a\":1}}\n");
    write(
        dir.path(),
        "flat.toml",
        "[options]\nflatten = \"_\"\n[columns.profile_name]\nrename = \"name\"\n",
    );
    let sb = plain();
    let r = sb.import(dir.path(), &["in.jsonl", "--mapping", "flat.toml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        person(&sb, "1"),
        json!({"name":"Ann","profile_address_city":"Porto","meta_a":1})
    );
    write(dir.path(), "keep.toml", "[columns.meta]\ndrop = true\n");
    let sb = plain();
    let r = sb.import(dir.path(), &["in.jsonl", "--mapping", "keep.toml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        person(&sb, "1"),
        json!({"profile":{"name":"Ann","address":{"city":"Porto"}}})
    );
}

#[test]
fn update_only_and_clearing_empty_values() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "a.csv", "id,plan,city\n1,pro,Porto\n");
    assert_eq!(sb.import(dir.path(), &["a.csv"]).code, 0);
    write(dir.path(), "b.csv", "id,plan,city\n1,free,\n2,pro,Lyon\n");
    for api in ["v1", "batch"] {
        let r = sb.import(
            dir.path(),
            &["b.csv", "--update-only", "--empty", "clear", "--api", api],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(person(&sb, "1"), json!({"plan":"free","city":""}), "{api}");
        assert!(
            !sb.people().contains_key("2"),
            "{api}: update-only must not create people"
        );
    }
}

#[test]
fn a_timestamp_column_gets_a_warning() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "t.csv", "id,_timestamp\n1,1500000000\n");
    let r = sb.import(dir.path(), &["t.csv"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stderr.contains("_timestamp") && r.stderr.contains("drops an update older"),
        "{}",
        r.stderr
    );
}

#[test]
fn presets_are_listed_and_printed_as_mapping_files() {
    let out = std::process::Command::new(bin())
        .arg("presets")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for p in [
        "mailchimp",
        "hubspot",
        "braze",
        "klaviyo",
        "intercom",
        "sendgrid",
        "brevo",
    ] {
        assert!(text.contains(p), "{text}");
    }
    let out = std::process::Command::new(bin())
        .args(["import", "--preset", "brevo", "--print-mapping"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(printed.contains("[columns.ADDED_TIME]") && printed.contains("%d-%m-%Y %H:%M"));
    // The printed text is itself a usable mapping file.
    let dir = tempdir();
    write(dir.path(), "brevo.toml", &printed);
    let sb = plain();
    let r = sb.import(
        dir.path(),
        &[&sample("brevo.csv"), "--mapping", "brevo.toml"],
    );
    assert_eq!((r.code, r.n("sent")), (0, 2), "{}", r.stderr);
}

#[test]
fn inspect_reports_columns_identifier_problems_and_a_mapping() {
    let dir = tempdir();
    write(
        dir.path(),
        "in.csv",
        "id,First Name,zip,signup_time,score,vip\n1,Ann,02134,2023-01-01,5,true\n1,Bob,00001,2023-01-02,6,false\n,Cy,12345,yesterday,7,true\n3,Di,,2023-01-04,8.5,false\n",
    );
    let r = inspect_json(dir.path(), &["in.csv"]);
    assert_eq!(r["rows"], 4);
    let col = |n: &str| {
        r["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(
        col("zip")["inferred_type"],
        "string",
        "leading zeros stay text"
    );
    assert_eq!(col("zip")["fill_rate"], 0.75);
    assert_eq!(col("score")["inferred_type"], "float");
    assert_eq!(col("vip")["inferred_type"], "bool");
    assert_eq!(col("First Name")["samples"], json!(["Ann", "Bob"]));
    assert_eq!(r["identifier"]["missing"], 1);
    assert_eq!(r["identifier"]["duplicates"], 1);
    assert_eq!(r["identifier"]["coverage"], 0.75);
    assert_eq!(r["invalid_rows"], 1);
    assert_eq!(r["invalid_examples"][0]["line"], 4);
    let m = r["suggested_mapping"].as_str().unwrap();
    assert!(
        m.contains("[columns.\"First Name\"]\nrename = \"first_name\""),
        "{m}"
    );
    // The human form says the same.
    let out = std::process::Command::new(bin())
        .current_dir(dir.path())
        .args(["inspect", "in.csv"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 missing, 1 duplicates") && text.contains("suggested mapping"),
        "{text}"
    );
}
