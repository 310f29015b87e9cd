//! `cio-import inspect FILE`: one streaming pass that tells, before anything is sent, what the
//! columns hold, how well the identifier covers the rows, which rows would be invalid and why,
//! what would break a Track API limit, and a mapping to start from.

use crate::cli::InspectArgs;
use crate::convert::{ConvertOptions, Converter};
use crate::exit;
use crate::mapping::snake_case;
use crate::record::Identifier;
use crate::source::{self, Format, Input, Item, Rows};
use crate::track::Api;
use crate::validate::{MAX_ATTRIBUTES, MAX_NAME_BYTES, MAX_VALUE_BYTES};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

/// What a column's values look like.
#[derive(Debug, Default)]
struct ColumnStats {
    name: String,
    filled: u64,
    longest: usize,
    samples: Vec<String>,
    /// Candidate types still possible: every non-empty value fits them.
    int: bool,
    float: bool,
    bool_: bool,
    timestamp: bool,
    leading_zero: bool,
    json_kinds: BTreeMap<&'static str, u64>,
}

impl ColumnStats {
    fn new(name: &str) -> ColumnStats {
        ColumnStats {
            name: name.to_string(),
            int: true,
            float: true,
            bool_: true,
            timestamp: true,
            ..ColumnStats::default()
        }
    }

    fn see_text(&mut self, v: &str) {
        if v.is_empty() {
            return;
        }
        self.filled += 1;
        self.longest = self.longest.max(v.len());
        if self.samples.len() < 2 && !self.samples.iter().any(|s| s == v) {
            self.samples.push(v.chars().take(40).collect());
        }
        let t = v.trim();
        if self.int && t.parse::<i64>().is_err() {
            self.int = false;
        }
        if t.len() > 1 && t.starts_with('0') && t.bytes().all(|b| b.is_ascii_digit()) {
            self.leading_zero = true;
        }
        if self.float && !t.parse::<f64>().is_ok_and(f64::is_finite) {
            self.float = false;
        }
        if self.bool_
            && !matches!(
                t.to_ascii_lowercase().as_str(),
                "true" | "false" | "yes" | "no"
            )
        {
            self.bool_ = false;
        }
        if self.timestamp && crate::timestamp::parse_str(t).is_err() {
            self.timestamp = false;
        }
    }

    fn see_json(&mut self, v: &serde_json::Value) {
        if v.is_null() {
            return;
        }
        *self
            .json_kinds
            .entry(crate::timestamp::json_kind(v))
            .or_default() += 1;
        match v {
            serde_json::Value::String(s) => self.see_text(s),
            other => {
                self.filled += 1;
                let text = other.to_string();
                self.longest = self.longest.max(text.len());
                if self.samples.len() < 2 && !self.samples.contains(&text) {
                    self.samples.push(text.chars().take(40).collect());
                }
                self.int = self.int && other.is_i64();
                self.float = self.float && other.is_number();
                self.bool_ = self.bool_ && other.is_boolean();
                self.timestamp = self.timestamp && other.is_u64();
            }
        }
    }

    fn inferred(&self) -> &'static str {
        if self.filled == 0 {
            return "empty";
        }
        if self.json_kinds.len() == 1 {
            if let Some(k) = self.json_kinds.keys().next() {
                if *k != "string" {
                    return k;
                }
            }
        }
        if self.bool_ {
            "bool"
        } else if self.int && !self.leading_zero {
            if self.timestamp && self.name.to_lowercase().contains("time") {
                "timestamp"
            } else {
                "integer"
            }
        } else if self.float && !self.leading_zero {
            "float"
        } else if self.timestamp && !self.int {
            "timestamp"
        } else {
            "string"
        }
    }
}

#[derive(Serialize)]
struct ColumnReport {
    name: String,
    fill_rate: f64,
    inferred_type: String,
    longest_bytes: usize,
    samples: Vec<String>,
}

#[derive(Serialize)]
struct Example {
    row: u64,
    line: u64,
    message: String,
}

#[derive(Serialize)]
struct Report {
    input: String,
    rows: u64,
    bytes: u64,
    elapsed_s: f64,
    columns: Vec<ColumnReport>,
    identifier: IdentifierReport,
    invalid_rows: u64,
    invalid_by_reason: BTreeMap<String, u64>,
    invalid_examples: Vec<Example>,
    limit_problems: Vec<String>,
    suggested_mapping: String,
}

#[derive(Serialize)]
struct IdentifierReport {
    kind: String,
    column: String,
    coverage: f64,
    missing: u64,
    duplicates: u64,
}

/// The shape of a message without its particulars, to count reasons.
fn reason_of(message: &str) -> String {
    let mut out = String::new();
    let mut in_quote = false;
    for c in message.chars() {
        match c {
            '\'' => {
                if !in_quote {
                    out.push_str("'…'");
                }
                in_quote = !in_quote;
            }
            _ if in_quote => {}
            c if c.is_ascii_digit() => {
                if !out.ends_with('N') {
                    out.push('N');
                }
            }
            c => out.push(c),
        }
    }
    out.chars().take(120).collect()
}

/// Runs `inspect`; returns the exit code.
pub fn run(args: &InspectArgs) -> u8 {
    match inspect(args) {
        Ok(()) => exit::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE_OR_IO
        }
    }
}

fn inspect(args: &InspectArgs) -> Result<(), String> {
    let started = Instant::now();
    let input = Input::from_arg(&args.input);
    let reading = args.read.resolve(&input).map_err(|e| e.0)?;
    let (format, delimiter, kind, id_column) = (
        reading.format,
        reading.delimiter,
        reading.id_kind,
        reading.id_column.clone(),
    );
    let mapping = reading.mapping;
    let opened = source::open(&input).map_err(|e| e.to_string())?;
    let bytes_read = opened.bytes_read.clone();
    let mut rows =
        Rows::new(opened, format, delimiter, &input.display()).map_err(|e| e.to_string())?;
    let header: Option<Vec<String>> = rows.csv_header().map(|h| h.names.clone());
    let mut opts = ConvertOptions::new(kind, &id_column, Api::Batch);
    opts.mapping = mapping.map(std::sync::Arc::new);
    let converter = Converter::new(opts, header.as_deref());
    let mut stats: Vec<ColumnStats> = header
        .iter()
        .flatten()
        .map(|n| ColumnStats::new(n))
        .collect();
    let mut json_index: std::collections::HashMap<String, usize> = Default::default();
    let mut total = 0u64;
    let mut invalid = 0u64;
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut examples = Vec::new();
    let mut seen_ids: HashSet<u64> = HashSet::new();
    let (mut missing, mut duplicates) = (0u64, 0u64);
    let mut read_error = None;
    for item in rows.by_ref() {
        let item = match item {
            Ok(i) => i,
            Err(e) => {
                read_error = Some(e.to_string());
                break;
            }
        };
        total += 1;
        let (pos, raw, bad) = match item {
            Item::Bad { pos, raw, message } => (pos, raw, Some(message)),
            Item::Row { pos, raw } => (pos, raw, None),
        };
        match &raw {
            crate::record::RawRow::Csv(rec) => {
                for (s, v) in stats.iter_mut().zip(rec.iter()) {
                    s.see_text(v);
                }
            }
            crate::record::RawRow::Line(line) => {
                if let Ok(serde_json::Value::Object(m)) =
                    serde_json::from_slice::<serde_json::Value>(line)
                {
                    for (k, v) in &m {
                        let i = match json_index.get(k) {
                            Some(i) => *i,
                            None if stats.len() < 2000 => {
                                stats.push(ColumnStats::new(k));
                                json_index.insert(k.clone(), stats.len() - 1);
                                stats.len() - 1
                            }
                            None => continue,
                        };
                        stats[i].see_json(v);
                    }
                }
            }
            _ => {}
        }
        let message = match (bad, &converter) {
            (Some(m), _) => Some(m),
            (None, Ok(c)) => match c.convert(pos, raw) {
                Ok(rec) => {
                    let key = id_key(&rec.identifier);
                    if !seen_ids.insert(key) {
                        duplicates += 1;
                    }
                    None
                }
                Err((inv, _)) => {
                    if inv.violation.field.as_deref() == Some(id_column.as_str()) {
                        missing += 1;
                    }
                    Some(inv.message())
                }
            },
            (None, Err(e)) => Some(e.clone()),
        };
        if let Some(m) = message {
            invalid += 1;
            *reasons.entry(reason_of(&m)).or_default() += 1;
            if examples.len() < 5 {
                examples.push(Example {
                    row: pos.row,
                    line: pos.line,
                    message: m,
                });
            }
        }
    }
    let mut limit_problems = Vec::new();
    if stats.len() > MAX_ATTRIBUTES + 1 {
        limit_problems.push(format!(
            "{} columns: a person may have at most {MAX_ATTRIBUTES} attributes per call",
            stats.len()
        ));
    }
    for s in &stats {
        if s.name.len() > MAX_NAME_BYTES {
            limit_problems.push(format!(
                "column name '{}…' is {} bytes (at most {MAX_NAME_BYTES})",
                s.name.chars().take(30).collect::<String>(),
                s.name.len()
            ));
        }
        if s.longest > MAX_VALUE_BYTES {
            limit_problems.push(format!(
                "column '{}' has values of up to {} bytes (at most {MAX_VALUE_BYTES})",
                s.name, s.longest
            ));
        }
    }
    let mut suggested = String::from(
        "# Suggested by cio-import inspect: check it, then --mapping this file\n[options]\n",
    );
    suggested.push_str(&format!(
        "identify_by = \"{}\"\nid_column = \"{}\"\n",
        kind.as_str(),
        snake_case(&id_column)
    ));
    for s in &stats {
        let target = snake_case(&s.name);
        let ty = s.inferred();
        let typed = matches!(ty, "integer" | "float" | "bool" | "timestamp");
        if target != s.name || typed {
            suggested.push_str(&format!("\n[columns.{:?}]\n", s.name));
            if target != s.name {
                suggested.push_str(&format!("rename = {target:?}\n"));
            }
            if typed && format == Format::Csv {
                suggested.push_str(&format!("type = \"{ty}\"\n"));
            }
        }
    }
    let valid = total - invalid;
    let report = Report {
        input: input.display(),
        rows: total,
        bytes: crate::tally::Tally::get(&bytes_read),
        elapsed_s: started.elapsed().as_secs_f64(),
        columns: stats
            .iter()
            .map(|s| ColumnReport {
                name: s.name.clone(),
                fill_rate: if total == 0 {
                    0.0
                } else {
                    (s.filled as f64 / total as f64 * 1000.0).round() / 1000.0
                },
                inferred_type: s.inferred().to_string(),
                longest_bytes: s.longest,
                samples: s.samples.clone(),
            })
            .collect(),
        identifier: IdentifierReport {
            kind: kind.as_str().into(),
            column: id_column.clone(),
            coverage: if total == 0 {
                0.0
            } else {
                ((total - missing) as f64 / total as f64 * 1000.0).round() / 1000.0
            },
            missing,
            duplicates,
        },
        invalid_rows: invalid,
        invalid_by_reason: reasons,
        invalid_examples: examples,
        limit_problems,
        suggested_mapping: suggested,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", human(&report, valid));
    }
    match read_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn id_key(id: &Identifier) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.value.as_bytes())
}

fn human(r: &Report, valid: u64) -> String {
    let mut o = format!(
        "{}: {} rows, {:.1} MB read in {:.2}s\n\n",
        r.input,
        r.rows,
        r.bytes as f64 / 1e6,
        r.elapsed_s
    );
    o.push_str(&format!(
        "{:<32} {:>6} {:<10} {:>8}  samples\n",
        "column", "filled", "type", "longest"
    ));
    for c in &r.columns {
        let name: String = c.name.chars().take(32).collect();
        o.push_str(&format!(
            "{:<32} {:>5.1}% {:<10} {:>8}  {}\n",
            name,
            c.fill_rate * 100.0,
            c.inferred_type,
            c.longest_bytes,
            c.samples.join(" | ")
        ));
    }
    o.push_str(&format!(
        "\nidentifier: {} from column '{}': {:.1}% of rows, {} missing, {} duplicates\n",
        r.identifier.kind,
        r.identifier.column,
        r.identifier.coverage * 100.0,
        r.identifier.missing,
        r.identifier.duplicates
    ));
    o.push_str(&format!(
        "rows that would be sent: {valid}; invalid: {}\n",
        r.invalid_rows
    ));
    for (reason, n) in &r.invalid_by_reason {
        o.push_str(&format!("  {n:>8}  {reason}\n"));
    }
    for e in &r.invalid_examples {
        o.push_str(&format!(
            "  e.g. row {} (line {}): {}\n",
            e.row, e.line, e.message
        ));
    }
    if !r.limit_problems.is_empty() {
        o.push_str("\nTrack API limits:\n");
        for p in &r.limit_problems {
            o.push_str(&format!("  {p}\n"));
        }
    }
    o.push_str(&format!("\nsuggested mapping:\n{}", r.suggested_mapping));
    o
}
