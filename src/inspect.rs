//! `cio-import inspect FILE`: one streaming pass that tells, before anything is sent, what the
//! columns hold, how well the identifier covers the rows, which rows would be invalid and why,
//! what would break a Track API limit, and a mapping that imports the file as it is. When the
//! delimiter or the identifier was not chosen and the default does not fit, a file is read
//! again with a better guess (said in the notes). It says which delimiter and encoding it read
//! the file with (detected or given), and which date columns need a mapping `format` (dates
//! such as 07/03/2019, day first or month first).

pub mod objects;

use crate::config::{ConfigError, ReadOptions};
use crate::convert::{ConvertOptions, Converter};
use crate::mapping::{snake_case, Mapping};
use crate::record::{IdKind, Identifier};
use crate::source::{self, Format, Input, Item, Source, SourceError, TextEncoding};
use crate::timestamp::DayMonth;
use crate::track::Api;
use crate::validate::{MAX_ATTRIBUTES, MAX_NAME_BYTES, MAX_VALUE_BYTES};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
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
    /// Every non-empty value is a date in numbers (07/03/2019): the first of them, and whether
    /// some value shows the order (a first number > 12: day first; a second > 12: month first).
    numeric_date: Option<crate::timestamp::NumericDate>,
    numeric_dates: bool,
    day_first_seen: bool,
    month_first_seen: bool,
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
            numeric_dates: true,
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
        if self.numeric_dates {
            match crate::timestamp::numeric_date(t) {
                Some(d) => {
                    match d.order() {
                        DayMonth::DayFirst => self.day_first_seen = true,
                        DayMonth::MonthFirst => self.month_first_seen = true,
                        DayMonth::Either => {}
                    }
                    self.numeric_date.get_or_insert(d);
                }
                None => {
                    self.numeric_dates = false;
                    self.numeric_date = None;
                }
            }
        }
    }

    /// For a column of dates in numbers (07/03/2019): the mapping `format` that reads them,
    /// and whether the values leave day first and month first open.
    fn date_format(&self) -> Option<(String, bool)> {
        let d = self
            .numeric_date
            .filter(|_| self.numeric_dates && self.filled > 0)?;
        match (self.day_first_seen, self.month_first_seen) {
            (true, true) => None,
            (false, true) => Some((d.format(false), false)),
            (true, false) => Some((d.format(true), false)),
            (false, false) => Some((d.format(true), true)),
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
        if self.date_format().is_some() {
            "date"
        } else if self.bool_ {
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
    /// The CSV delimiter the file was read with (`tab` for a tab), none for JSONL.
    delimiter: Option<String>,
    /// Whether that delimiter was detected (rather than given or taken from the name).
    delimiter_detected: bool,
    /// The text encoding the file was read in.
    encoding: String,
    /// What inspect chose on its own (a delimiter, an identifier) or could not.
    notes: Vec<String>,
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

/// What to inspect and how.
#[derive(Clone, Debug)]
pub struct InspectOptions {
    /// The file, or stdin.
    pub input: Input,
    /// How to read it; what is left unset is guessed, and a better guess said in the notes.
    pub read: ReadOptions,
    /// Print JSON instead of a table.
    pub json: bool,
}

/// Why an inspection could not be made or finished.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The reading options or the mapping.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The input could not be opened or read (a report printed covers what was read before).
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// How a pass reads the input and finds the people in it.
#[derive(Clone)]
struct Plan {
    format: Format,
    delimiter: u8,
    /// Detect the delimiter (none was chosen); `delimiter` is the fallback.
    detect_delimiter: bool,
    encoding: Option<&'static encoding_rs::Encoding>,
    kind: IdKind,
    id_column: String,
    mapping: Option<Arc<Mapping>>,
}

/// What one pass over the input found.
struct Pass {
    stats: Vec<ColumnStats>,
    csv_columns: Option<usize>,
    total: u64,
    invalid: u64,
    reasons: BTreeMap<String, u64>,
    examples: Vec<Example>,
    missing: u64,
    duplicates: u64,
    bytes: u64,
    read_error: Option<SourceError>,
    /// The delimiter detected, if it was.
    detected: Option<u8>,
    encoding: TextEncoding,
}

/// One streaming pass: column statistics, identifier coverage, invalid rows.
fn scan(input: &Input, plan: &Plan) -> Result<Pass, SourceError> {
    let dialect = source::Dialect {
        format: plan.format,
        delimiter: (!plan.detect_delimiter).then_some(plan.delimiter),
        encoding: plan.encoding,
    };
    let Source {
        mut rows,
        bytes_read,
        encoding,
        delimiter,
        ..
    } = source::open_rows(input, None, &dialect)?;
    let detected = delimiter.filter(|(_, detected)| *detected).map(|(d, _)| d);
    let header: Option<Vec<String>> = rows.csv_header().map(|h| h.names.clone());
    let mut opts = ConvertOptions::new(plan.kind, &plan.id_column, Api::Batch);
    opts.mapping = plan.mapping.clone();
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
                read_error = Some(e);
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
        // Coverage counts the rows whose identifier could be read: a row that cannot be read
        // as one, or that no column can identify, is missing it.
        let message = match (bad, &converter) {
            (Some(m), _) => {
                missing += 1;
                Some(m)
            }
            (None, Ok(c)) => match c.convert(pos, raw) {
                Ok(rec) => {
                    let key = id_key(&rec.identifier);
                    if !seen_ids.insert(key) {
                        duplicates += 1;
                    }
                    None
                }
                Err((inv, _)) => {
                    if inv.violation.field.as_deref() == Some(plan.id_column.as_str()) {
                        missing += 1;
                    }
                    Some(inv.message())
                }
            },
            (None, Err(e)) => {
                missing += 1;
                Some(e.clone())
            }
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
    Ok(Pass {
        stats,
        csv_columns: header.map(|h| h.len()),
        total,
        invalid,
        reasons,
        examples,
        missing,
        duplicates,
        bytes: crate::tally::Tally::get(&bytes_read),
        read_error,
        detected,
        encoding,
    })
}

/// The delimiter a one-column header was probably written with.
fn likely_delimiter(header: &str) -> Option<u8> {
    [b';', b'\t', b'|']
        .into_iter()
        .map(|d| (d, header.bytes().filter(|b| *b == d).count()))
        .filter(|(_, n)| *n > 0)
        .max_by_key(|(_, n)| *n)
        .map(|(d, _)| d)
}

/// The column that most likely holds email addresses: named email (or like it), every sample
/// an address.
fn email_column(stats: &[ColumnStats]) -> Option<String> {
    let looks_like_email =
        |s: &&ColumnStats| s.filled > 0 && s.samples.iter().all(|v| v.contains('@'));
    let by_name = |exact: bool| {
        stats
            .iter()
            .filter(|s| {
                let n = snake_case(&s.name);
                if exact {
                    n == "email"
                } else {
                    n.contains("email")
                }
            })
            .filter(looks_like_email)
            .max_by_key(|s| s.filled)
            .map(|s| s.name.clone())
    };
    by_name(true).or_else(|| by_name(false))
}

fn delimiter_word(d: u8) -> String {
    match d {
        b'\t' => "tab".to_string(),
        d => (d as char).to_string(),
    }
}

/// Runs `inspect`: prints the report on stdout (as far as the input could be read).
pub fn run(args: &InspectOptions) -> Result<(), InspectError> {
    let started = Instant::now();
    let input = args.input.clone();
    let reading = args.read.resolve(&input)?;
    let mapping_text = reading.mapping_text;
    let delimiter_chosen = args.read.delimiter.is_some()
        || reading
            .mapping
            .as_ref()
            .is_some_and(|m| m.delimiter.is_some());
    let id_chosen = args.read.identify_by.is_some()
        || args.read.id_column.is_some()
        || reading.mapping.is_some();
    // A second pass is possible on a regular file only.
    let rereadable =
        matches!(&input, Input::Path(p) if std::fs::metadata(p).is_ok_and(|m| m.is_file()));
    let mut plan = Plan {
        format: reading.format,
        delimiter: reading.delimiter,
        detect_delimiter: reading.detect_delimiter,
        encoding: reading.encoding,
        kind: reading.id_kind,
        id_column: reading.id_column.clone(),
        mapping: reading.mapping.map(Arc::new),
    };
    let mut notes: Vec<String> = Vec::new();
    let mut pass = scan(&input, &plan)?;
    // What was detected is what a second pass (and the suggested mapping) reads with.
    plan.detect_delimiter = false;
    if let Some(d) = pass.detected {
        plan.delimiter = d;
        if d != source::default_delimiter(&input) {
            notes.push(format!(
                "delimiter '{}' detected from the header (pass --delimiter to choose)",
                delimiter_word(d)
            ));
        }
    }
    if !pass.encoding.is_utf8() {
        notes.push(format!(
            "read as {}{}",
            pass.encoding.label(),
            if args.read.encoding.is_none() {
                " (its byte-order mark says so)"
            } else {
                ""
            }
        ));
    }
    if let (Some(1), false, Some(first)) = (pass.csv_columns, delimiter_chosen, pass.stats.first())
    {
        if let Some(d) = likely_delimiter(&first.name) {
            let (was, now) = (delimiter_word(plan.delimiter), delimiter_word(d));
            if rereadable {
                notes.push(format!(
                    "read with '{was}' the header is one column: read with '{now}' instead (pass --delimiter to choose)"
                ));
                plan.delimiter = d;
                pass = scan(&input, &plan)?;
            } else {
                notes.push(format!(
                    "read with '{was}' the header is one column that contains '{now}': pass --delimiter '{now}'"
                ));
            }
        }
    }
    if !id_chosen && !pass.stats.iter().any(|s| s.name == plan.id_column) {
        match email_column(&pass.stats) {
            Some(col) if rereadable => {
                notes.push(format!(
                    "no column '{}': people identified by email from column '{col}' (pass --identify-by to choose)",
                    plan.id_column
                ));
                plan.kind = IdKind::Email;
                plan.id_column = col;
                pass = scan(&input, &plan)?;
            }
            Some(col) => notes.push(format!(
                "no column '{}': pass --identify-by email --id-column '{col}'",
                plan.id_column
            )),
            None => notes.push(format!(
                "no column '{}': choose the identifier with --identify-by and --id-column",
                plan.id_column
            )),
        }
    }
    if mapping_text.is_none() {
        notes.extend(date_notes(&pass.stats));
    }
    let suggested = match &mapping_text {
        Some(text) => suggest_from_mapping(text, &plan, args, &input),
        None => suggest(&pass.stats, &plan, args, &input),
    };
    let total = pass.total;
    let valid = total - pass.invalid;
    let report = Report {
        input: input.display(),
        rows: total,
        bytes: pass.bytes,
        elapsed_s: started.elapsed().as_secs_f64(),
        columns: pass
            .stats
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
            kind: plan.kind.as_str().into(),
            column: plan.id_column.clone(),
            coverage: if total == 0 {
                0.0
            } else {
                ((total - pass.missing) as f64 / total as f64 * 1000.0).round() / 1000.0
            },
            missing: pass.missing,
            duplicates: pass.duplicates,
        },
        invalid_rows: pass.invalid,
        invalid_by_reason: pass.reasons,
        invalid_examples: pass.examples,
        limit_problems: limit_problems(&pass.stats),
        delimiter: (plan.format == Format::Csv).then(|| delimiter_word(plan.delimiter)),
        delimiter_detected: pass.detected.is_some(),
        encoding: pass.encoding.label(),
        notes,
        suggested_mapping: suggested,
    };
    let text = if args.json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        )
    } else {
        human(&report, valid)
    };
    // A reader that stopped early (`| head`) is no reason to fail.
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = std::io::Write::write_all(&mut stdout, text.as_bytes())
        .and_then(|_| std::io::Write::flush(&mut stdout))
    {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write the report to stdout: {e}");
        }
    }
    match pass.read_error {
        Some(e) => Err(InspectError::Source(e)),
        None => Ok(()),
    }
}

fn limit_problems(stats: &[ColumnStats]) -> Vec<String> {
    let mut limit_problems = Vec::new();
    if stats.len() > MAX_ATTRIBUTES + 1 {
        limit_problems.push(format!(
            "{} columns: a person may have at most {MAX_ATTRIBUTES} attributes per call; empty \
cells are not sent (unless --empty clear), so only a row that fills more than {MAX_ATTRIBUTES} \
fails",
            stats.len()
        ));
    }
    for s in stats {
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
    limit_problems
}

const SUGGESTED_HEADER: &str =
    "# Suggested by cio-import inspect: check it, then --mapping this file\n";

/// The reading options a suggestion must carry so that `import --mapping` alone reads the
/// file as this inspection did: (key, value).
fn reading_options(
    plan: &Plan,
    args: &InspectOptions,
    input: &Input,
) -> Vec<(&'static str, String)> {
    let mut o = Vec::new();
    if args.read.format.is_some() {
        o.push(("format", plan.format.extension().to_string()));
    }
    if plan.format == Format::Csv && plan.delimiter != source::default_delimiter(input) {
        o.push(("delimiter", delimiter_word(plan.delimiter)));
    }
    o
}

/// A mapping from scratch: snake_case names, the inferred types of CSV columns, the identifier
/// under its new name.
fn suggest(stats: &[ColumnStats], plan: &Plan, args: &InspectOptions, input: &Input) -> String {
    let mut targets: Vec<String> = Vec::with_capacity(stats.len());
    let mut used: HashSet<String> = stats.iter().map(|s| s.name.clone()).collect();
    for s in stats {
        let t = snake_case(&s.name);
        // A name that would collide with another column (or be empty) keeps its own.
        if t != s.name && (t.is_empty() || used.contains(&t)) {
            targets.push(s.name.clone());
        } else {
            used.insert(t.clone());
            targets.push(t);
        }
    }
    let id_target = stats
        .iter()
        .zip(&targets)
        .find(|(s, _)| s.name == plan.id_column)
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| plan.id_column.clone());
    let mut out = format!("{SUGGESTED_HEADER}[options]\n");
    out.push_str(&format!(
        "identify_by = \"{}\"\nid_column = {id_target:?}\n",
        plan.kind.as_str()
    ));
    for (k, v) in reading_options(plan, args, input) {
        out.push_str(&format!("{k} = {v:?}\n"));
    }
    for (s, target) in stats.iter().zip(&targets) {
        let ty = s.inferred();
        // The identifier and created_at keep the converter's own handling.
        let typed = matches!(ty, "integer" | "float" | "bool" | "timestamp")
            && plan.format == Format::Csv
            && s.name != plan.id_column
            && target != crate::convert::CREATED_AT;
        // Dates in numbers need their format, created_at's too.
        let date = (plan.format == Format::Csv && s.name != plan.id_column)
            .then(|| s.date_format())
            .flatten();
        if *target != s.name || typed || date.is_some() {
            out.push_str(&format!("\n[columns.{:?}]\n", s.name));
            if *target != s.name {
                out.push_str(&format!("rename = {target:?}\n"));
            }
            if let Some((format, open)) = &date {
                if *open {
                    out.push_str(
                        "# day first or month first? the values do not tell: \"%m/%d/%Y\" is month first\n",
                    );
                }
                out.push_str(&format!("type = \"timestamp\"\nformat = {format:?}\n"));
            } else if typed {
                out.push_str(&format!("type = \"{ty}\"\n"));
            }
        }
    }
    out
}

/// A note for each column of dates in numbers: the format that reads them, and whether day
/// first and month first are left open by the values.
fn date_notes(stats: &[ColumnStats]) -> Vec<String> {
    stats
        .iter()
        .filter_map(|s| {
            let (format, open) = s.date_format()?;
            let sample = s.samples.first().cloned().unwrap_or_default();
            Some(if open {
                let other = s.numeric_date.map(|d| d.format(false)).unwrap_or_default();
                format!(
                    "column '{}' holds dates such as {sample}: day first or month first is ambiguous (no value has a \
number above 12); read them with a mapping format: [columns.{:?}] type = \"timestamp\", format = {format:?} \
(day first, as suggested) or {other:?} (month first)",
                    s.name, s.name
                )
            } else {
                format!(
                    "column '{}' holds dates such as {sample}: read them with a mapping format: [columns.{:?}] \
type = \"timestamp\", format = {format:?} (the values show the order)",
                    s.name, s.name
                )
            })
        })
        .collect()
}

/// The mapping in use (a preset or `--mapping`), with the identifier and reading options this
/// inspection used: as written when they already match, else rewritten with them.
fn suggest_from_mapping(text: &str, plan: &Plan, args: &InspectOptions, input: &Input) -> String {
    let mut wanted = vec![
        ("identify_by", plan.kind.as_str().to_string()),
        ("id_column", plan.id_column.clone()),
    ];
    wanted.extend(reading_options(plan, args, input));
    let Ok(mut table) = text.parse::<toml::Table>() else {
        return format!("{SUGGESTED_HEADER}{text}");
    };
    let options = table
        .entry("options")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(options) = options.as_table_mut() else {
        return format!("{SUGGESTED_HEADER}{text}");
    };
    let same = wanted
        .iter()
        .all(|(k, v)| options.get(*k).and_then(|x| x.as_str()) == Some(v.as_str()));
    if same {
        return format!("{SUGGESTED_HEADER}{text}");
    }
    for (k, v) in wanted {
        options.insert(k.to_string(), toml::Value::String(v));
    }
    match toml::to_string(&table) {
        Ok(t) => format!("{SUGGESTED_HEADER}{t}"),
        Err(_) => format!("{SUGGESTED_HEADER}{text}"),
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
    if !r.notes.is_empty() {
        o.push_str("\nnotes:\n");
        for n in &r.notes {
            o.push_str(&format!("  {n}\n"));
        }
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
