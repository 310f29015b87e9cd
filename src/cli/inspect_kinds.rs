//! `cio-import inspect FILE --kind devices|merges`: what an import of the file would send,
//! without sending: how many rows convert, the devices by platform or every merge (the first
//! ones, one a line, and a count), and the first invalid rows with their line and reason.

use super::inspect::InspectArgs;
use super::KindArg;
use crate::config::ImportConfig;
use crate::exit;
use crate::operation::Target;
use crate::source::{Input, Item};
use std::collections::BTreeMap;

/// Invalid rows named in the report.
const FIRST_INVALID: usize = 5;

/// Runs `inspect --kind devices|merges`.
pub(super) fn run(args: &InspectArgs) -> anyhow::Result<u8> {
    let cfg = ImportConfig::builder(Input::from_arg(&args.input))
        .read(args.read.options())
        .devices(args.kind == KindArg::Devices)
        .merges(args.kind == KindArg::Merges)
        .dry_run(true)
        .build()?;
    let (rows, converter) = crate::convert::prepass(&cfg).map_err(|e| anyhow::anyhow!(e))?;
    let (mut read, mut ok, mut bad) = (0u64, 0u64, 0u64);
    let mut platforms: BTreeMap<String, u64> = BTreeMap::new();
    let mut merges: Vec<String> = Vec::new();
    let mut invalid: Vec<String> = Vec::new();
    for item in rows {
        read += 1;
        match item.map_err(|e| anyhow::anyhow!(e.to_string()))? {
            Item::Bad { pos, message, .. } => {
                bad += 1;
                if invalid.len() < FIRST_INVALID {
                    invalid.push(format!("line {}: {message}", pos.line));
                }
            }
            Item::Row { pos, raw } => match converter.convert(pos, raw) {
                Ok(op) => {
                    ok += 1;
                    match &op.target {
                        Some(Target::Secondary(sec)) => {
                            if merges.len() < crate::confirm::FIRST_MERGES {
                                merges.push(format!(
                                    "line {}: merge {} {} into {} {}",
                                    pos.line,
                                    sec.kind.as_str(),
                                    sec.value,
                                    op.identifier.kind.as_str(),
                                    op.identifier.value
                                ));
                            }
                        }
                        _ => {
                            let payload: serde_json::Value =
                                serde_json::from_slice(&op.payload).unwrap_or_default();
                            let p = payload["device"]["platform"]
                                .as_str()
                                .unwrap_or("?")
                                .to_string();
                            *platforms.entry(p).or_default() += 1;
                        }
                    }
                }
                Err((inv, _)) => {
                    bad += 1;
                    if invalid.len() < FIRST_INVALID {
                        invalid.push(format!("line {}: {}", pos.line, inv.message()));
                    }
                }
            },
        }
    }
    let kind = if args.kind == KindArg::Merges {
        "merges"
    } else {
        "devices"
    };
    if args.json {
        let report = serde_json::json!({
            "kind": kind,
            "rows": read,
            "convert": ok,
            "invalid": bad,
            "platforms": platforms,
            "merges": merges,
            "first_invalid": invalid,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(exit::SUCCESS);
    }
    let one = |n: u64, one: &'static str, many: &'static str| if n == 1 { one } else { many };
    println!(
        "{}: {read} {}; {ok} {} would be sent, {bad} {} invalid",
        cfg.input.display(),
        one(read, "row", "rows"),
        one(ok, &kind[..kind.len() - 1], kind),
        one(bad, "row is", "rows are"),
    );
    for (p, n) in &platforms {
        println!("  {p}: {n}");
    }
    for m in &merges {
        println!("  {m}");
    }
    if ok > merges.len() as u64 && !merges.is_empty() {
        println!("  ... and {} more", ok - merges.len() as u64);
    }
    for i in &invalid {
        println!("  invalid: {i}");
    }
    Ok(exit::SUCCESS)
}
