//! From a source row to a validated [`Operation`]: identifier, attributes, `created_at`, and the
//! payload written straight to bytes (no per-row map: this is the hot path).

use crate::json_object::{self, Members};
use crate::mapping::{Mapping, Rule};
use crate::operation::{Action, Entity, Operation};
use crate::record::{IdKind, Identifier, Position, RawRow};
use crate::timestamp;
use crate::track::{json_key, Api, PayloadWriter};
use crate::validate::{self, Violation, MAX_ATTRIBUTES, MAX_VALUE_BYTES};
use serde_json::Value;

pub mod device;
pub mod event;
pub(crate) mod header;
pub mod merge;
pub mod object;
pub mod relationship;
pub use event::EventOptions;
pub use object::{ObjectKind, ObjectOptions};

/// How rows become people.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// Which identifier addresses the person.
    pub id_kind: IdKind,
    /// The column holding it.
    pub id_column: String,
    /// The API the payload is built for.
    pub api: Api,
    /// Compute each row's attribute hash (for the ledger).
    pub hash: bool,
    /// Column mapping (a `--mapping` file or a `--preset`).
    pub mapping: Option<std::sync::Arc<Mapping>>,
    /// Send empty cells as "" to clear the attribute, instead of leaving them out.
    pub clear_empty: bool,
    /// `_update: true`: update existing people only.
    pub update_only: bool,
    /// What each row does to its person: identify (the default) sends the attributes;
    /// delete, suppress and unsuppress read only the identifier and ignore other columns.
    pub action: Action,
    /// `--kind events`: each row is an event (the action is then [`Action::Event`]), with
    /// its name, time and id in these columns.
    pub event: Option<EventOptions>,
    /// `--kind objects` or `--kind relationships`: each row is an object, or a person's
    /// relationship to an object, of this object type.
    pub object: Option<ObjectOptions>,
}

impl ConvertOptions {
    /// Plain options: no mapping, empty cells left out.
    pub fn new(id_kind: IdKind, id_column: &str, api: Api) -> ConvertOptions {
        ConvertOptions {
            id_kind,
            id_column: id_column.to_string(),
            api,
            hash: false,
            mapping: None,
            clear_empty: false,
            update_only: false,
            action: Action::Identify,
            event: None,
            object: None,
        }
    }
}

/// Why a row cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The identifier, if it could be read.
    pub identifier: Option<String>,
    /// The rule it broke.
    pub violation: Violation,
}

impl Invalid {
    /// The message for the errors report: the field, then what to do.
    pub fn message(&self) -> String {
        match &self.violation.field {
            Some(f) if !self.violation.message.contains(&format!("'{f}'")) => {
                format!("field '{f}': {}", self.violation.message)
            }
            _ => self.violation.message.clone(),
        }
    }
}

/// The attribute converted to Unix seconds.
pub const CREATED_AT: &str = "created_at";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Identifier,
    CreatedAt,
    Plain,
    Dropped,
}

#[derive(Debug)]
struct Column {
    /// The header's name (for messages).
    source: String,
    /// The attribute name after mapping.
    name: String,
    key: Vec<u8>,
    role: Role,
    rule: Option<Rule>,
    name_problem: Option<Violation>,
}

/// One attribute ready to write: its `"name":` text and its value's JSON text.
#[derive(Debug)]
struct Fixed {
    name: String,
    key: Vec<u8>,
    value: Value,
}

/// Converts rows of one input. Built once per file: CSV column names are mapped, checked and
/// escaped once, not once per row.
#[derive(Debug)]
pub struct Converter {
    opts: ConvertOptions,
    columns: Vec<Column>,
    id_index: Option<usize>,
    fallback_index: Option<usize>,
    constants: Vec<Fixed>,
    timestamp_warned: std::cell::Cell<bool>,
    /// `--kind events`: the ids the file gave its events so far, with their lines.
    event_ids: std::cell::RefCell<std::collections::HashMap<u128, u64>>,
}

fn invalid(identifier: Option<&str>, field: Option<&str>, message: String) -> Invalid {
    Invalid {
        identifier: identifier.map(str::to_string),
        violation: Violation {
            field: field.map(str::to_string),
            message,
        },
    }
}

fn warn_timestamp() {
    tracing::warn!(
        "the input carries _timestamp: Customer.io drops an update older than the person's \
latest one (and still answers 200), so historical _timestamp values in a migration silently \
lose data; drop the column (a mapping with drop = true) unless you mean it"
    );
}

fn type_name(rule: &Rule) -> String {
    match rule.kind {
        Some(k) => format!("{k:?}").to_lowercase(),
        None => "value map".into(),
    }
}

/// A pre-pass over the input before the run reads it (the deletion count, the 72-hour
/// count): its rows and a converter for them. `Err` names the input.
pub fn prepass(
    cfg: &crate::config::ImportConfig,
) -> Result<(crate::source::Rows, Converter), String> {
    let name = cfg.input.display();
    let rows = crate::source::open_rows(&cfg.input, None, &cfg.dialect())
        .map_err(|e| e.to_string())?
        .rows;
    let header = rows.csv_header().map(|h| h.names.clone());
    let converter = Converter::new(cfg.convert.clone(), header.as_deref())
        .map_err(|m| format!("{name}: {m}"))?;
    Ok((rows, converter))
}

impl Converter {
    /// A converter for rows under `header` (CSV) or without one (JSONL). Fails when the
    /// mapping sends two columns (or a column and a constant) to the same attribute.
    pub fn new(opts: ConvertOptions, header: Option<&[String]>) -> Result<Converter, String> {
        let mapping = opts.mapping.clone();
        let mut columns = Vec::new();
        for source in header.unwrap_or(&[]) {
            let (target, rule) = match &mapping {
                Some(m) => {
                    let (t, r) = m.resolve(source);
                    (t, r.cloned())
                }
                None => (Some(source.clone()), None),
            };
            let name = target.clone().unwrap_or_default();
            let role = match &target {
                None => Role::Dropped,
                Some(t) if *t == opts.id_column => Role::Identifier,
                Some(t) if t == CREATED_AT && rule.as_ref().is_none_or(|r| !r.converts()) => {
                    Role::CreatedAt
                }
                Some(_) => Role::Plain,
            };
            columns.push(Column {
                source: source.clone(),
                key: json_key(&name),
                name_problem: validate::attribute_name(&name).err(),
                name,
                role,
                rule: rule.filter(|r| r.converts() || !r.set_when_present.is_empty()),
            });
        }
        let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
        for c in columns.iter().filter(|c| c.role != Role::Dropped) {
            if let Some(other) = seen.insert(&c.name, &c.source) {
                return Err(format!(
                    "the columns '{other}' and '{}' both become the attribute '{}': drop or rename one in the mapping",
                    c.source, c.name
                ));
            }
        }
        let mut constants: Vec<Fixed> = Vec::new();
        for (k, v) in mapping
            .as_ref()
            .map(|m| m.constants.as_slice())
            .unwrap_or(&[])
        {
            validate::attribute_name(k)
                .map_err(|e| format!("the constant '{k}' in the mapping: {}", e.message))?;
            let value = if k == CREATED_AT && !v.is_i64() {
                timestamp::parse_json(v)
                    .map(Value::from)
                    .map_err(|e| format!("the constant created_at in the mapping: {e}"))?
            } else {
                v.clone()
            };
            constants.push(Fixed {
                name: k.clone(),
                key: json_key(k),
                value,
            });
        }
        for k in &constants {
            if let Some(src) = seen.get(k.name.as_str()) {
                return Err(format!(
                    "the constant '{}' is also the column '{src}': drop the column or the constant",
                    k.name
                ));
            }
        }
        if header.is_some()
            && opts.action == Action::Identify
            && columns
                .iter()
                .any(|c| c.name == "_timestamp" && c.role != Role::Dropped)
        {
            warn_timestamp();
        }
        let id_index = columns.iter().position(|c| c.role == Role::Identifier);
        if let Some(o) = &opts.object {
            object::check_header(o, &opts.id_column, header, &columns, mapping.is_some())?;
        }
        if let (Some(_), Action::Merge) = (header, opts.action) {
            // A merges file names its two people in its own columns.
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            merge::sides(&names)?;
        } else if header.is_some() && id_index.is_none() {
            let names: Vec<&str> = columns.iter().map(|c| c.source.as_str()).collect();
            return Err(header::missing_identifier(
                &opts.id_column,
                &names,
                mapping.is_some(),
            ));
        }
        // More attribute columns than a person may have: with `--empty clear` every row sends
        // them all and would fail, so the run stops at the header; otherwise empty cells are
        // left out (a sparse, wide CRM export fits), so a warning, and a row that fills more
        // than the limit fails alone.
        if header.is_some() && opts.event.is_none() && crate::track::carries_attributes(opts.action)
        {
            let attribute_columns = columns
                .iter()
                .filter(|c| !matches!(c.role, Role::Dropped | Role::Identifier))
                .count();
            if opts.clear_empty {
                if let Some(m) = header::too_many_attributes(attribute_columns, constants.len()) {
                    return Err(m);
                }
            } else if let Some(m) = header::wide_header(attribute_columns, constants.len()) {
                tracing::warn!("{m}");
            }
        }
        let fallback_index =
            mapping
                .as_ref()
                .and_then(|m| m.fallback.as_ref())
                .and_then(|(col, _)| {
                    columns
                        .iter()
                        .position(|c| c.role != Role::Dropped && c.name == *col)
                });
        Ok(Converter {
            opts,
            columns,
            id_index,
            fallback_index,
            constants,
            timestamp_warned: std::cell::Cell::new(header.is_some()),
            event_ids: Default::default(),
        })
    }

    /// The identifier cell of a CSV row that could not be read as a row (ragged, or not UTF-8
    /// elsewhere), decoded lossily and trimmed: for the errors file only, never sent.
    pub fn identifier_for_report(&self, raw: &RawRow) -> Option<String> {
        let cell = raw.csv_bytes()?.get(self.id_index?)?;
        let text = String::from_utf8_lossy(cell).trim().to_string();
        (!text.is_empty()).then_some(text)
    }

    /// Converts and validates one row; an invalid row comes back with its raw form.
    pub fn convert(&self, pos: Position, raw: RawRow) -> Result<Operation, (Invalid, RawRow)> {
        if let Some(ev) = &self.opts.event {
            return self.convert_event(ev, pos, raw);
        }
        match self.opts.action {
            Action::AddDevice | Action::DeleteDevice => return self.convert_device(pos, raw),
            Action::Merge => return self.convert_merge(pos, raw),
            _ => {}
        }
        if let Some(o) = &self.opts.object {
            return self.convert_object_kind(o, pos, raw);
        }
        if !crate::track::carries_attributes(self.opts.action) {
            return self.convert_bare(pos, raw);
        }
        let built = match &raw {
            RawRow::Csv(rec) => self.csv(rec),
            RawRow::Line(line) if self.opts.mapping.is_some() => self.jsonl_mapped(line),
            RawRow::Line(line) => self.jsonl(line),
            RawRow::CsvBytes(_) | RawRow::CsvLine(_) => {
                Err(invalid(None, None, "not a readable CSV row".into()))
            }
        };
        match built {
            Ok((identifier, attributes, payload, (hash, attrs), conditional)) => Ok(Operation {
                pos,
                entity: Entity::Person,
                action: Action::Identify,
                identifier,
                event_id: None,
                object: None,
                attributes,
                payload,
                raw,
                hash,
                attrs,
                conditional,
                forget_first: false,
                target: None,
            }),
            Err(inv) => Err((inv, raw)),
        }
    }

    /// A delete, suppress or unsuppress: the identifier only, every other column ignored.
    /// No hash (the ledger never skips it: it forgets the person before the send).
    fn convert_bare(&self, pos: Position, raw: RawRow) -> Result<Operation, (Invalid, RawRow)> {
        let id = match &raw {
            RawRow::Csv(rec) => self.csv_identifier(rec),
            RawRow::Line(line) => self.jsonl_identifier(line),
            RawRow::CsvBytes(_) | RawRow::CsvLine(_) => {
                Err(invalid(None, None, "not a readable CSV row".into()))
            }
        };
        match id {
            Ok(identifier) => Ok(Operation {
                pos,
                entity: Entity::Person,
                action: self.opts.action,
                payload: crate::track::bare_payload(
                    self.opts.api,
                    Entity::Person,
                    self.opts.action,
                    &identifier,
                ),
                identifier,
                event_id: None,
                object: None,
                attributes: 0,
                raw,
                hash: None,
                attrs: None,
                conditional: false,
                forget_first: false,
                target: None,
            }),
            Err(inv) => Err((inv, raw)),
        }
    }

    /// The identifier a row addresses, read without building its payload where the format
    /// allows (CSV, plain JSONL; mapped JSONL is converted whole, as a mapping may reshape
    /// the identifier). `None` when it cannot be read (the row is invalid, or will be). Used
    /// by pre-passes that only need to know who a row is about ([`crate::groups`]).
    pub fn identifier_of(&self, raw: &RawRow) -> Option<Identifier> {
        match raw {
            RawRow::Csv(rec) => self.csv_identifier(rec).ok(),
            RawRow::Line(line) if self.opts.mapping.is_none() => self.jsonl_identifier(line).ok(),
            RawRow::Line(_) => self
                .convert(Position { row: 0, line: 0 }, raw.clone())
                .ok()
                .map(|op| op.identifier),
            RawRow::CsvBytes(_) | RawRow::CsvLine(_) => None,
        }
    }

    /// Starts the payload of the identify of `id`: a person's, or with `--kind objects` the
    /// object's whose id it holds.
    fn begin_payload(&self, id: &Identifier, capacity: usize) -> PayloadWriter {
        match &self.opts.object {
            Some(o) if o.kind == ObjectKind::Objects => {
                PayloadWriter::begin_object(&o.object(&id.value), capacity)
            }
            _ => PayloadWriter::begin(self.opts.api, id, capacity),
        }
    }

    /// The identifier of a CSV row (or of its fallback column, when the mapping names one).
    fn csv_identifier(&self, rec: &csv::StringRecord) -> Result<Identifier, Invalid> {
        let field = |i: usize| rec.get(i).unwrap_or_default();
        let id_value = self.id_index.map(field).ok_or_else(|| self.missing_id())?;
        match (self.fallback(), self.fallback_index) {
            (Some((col, kind)), Some(i)) if id_value.trim().is_empty() => {
                self.identifier(kind, col, field(i))
            }
            _ => self.identifier(self.opts.id_kind, &self.opts.id_column, id_value),
        }
    }

    /// The identifier of a JSON line: the member named (or mapped to) the identifier column.
    fn jsonl_identifier(&self, line: &[u8]) -> Result<Identifier, Invalid> {
        let fields = parse_object(line)?;
        let column = self.opts.id_column.as_str();
        let mapping = self.opts.mapping.as_deref();
        let becomes = |name: &str| match mapping {
            Some(m) => m.resolve(name).0.as_deref() == Some(column),
            None => name == column,
        };
        let id_raw = fields
            .iter()
            .find(|(k, _)| becomes(k))
            .map(|(_, v)| {
                json_object::read(v)
                    .map_err(|m| invalid(None, Some(column), format!("identifier '{column}' {m}")))
            })
            .transpose()?;
        let id_value = self.json_identifier(column, id_raw.as_ref())?;
        self.identifier(self.opts.id_kind, column, &id_value)
    }

    fn identifier(&self, kind: IdKind, column: &str, value: &str) -> Result<Identifier, Invalid> {
        validate::identifier(column, value).map_err(|v| Invalid {
            identifier: Some(value.to_string()),
            violation: v,
        })?;
        let value = match kind {
            IdKind::CioId => value.strip_prefix("cio_").unwrap_or(value),
            _ => value,
        };
        Ok(Identifier {
            kind,
            value: value.to_string(),
        })
    }

    fn missing_id(&self) -> Invalid {
        let column = &self.opts.id_column;
        invalid(
            None,
            Some(column),
            format!("identifier '{column}' is missing: add it, or choose another column with --id-column"),
        )
    }

    fn fallback(&self) -> Option<(&str, IdKind)> {
        if self
            .opts
            .object
            .as_ref()
            .is_some_and(|o| o.kind == ObjectKind::Objects)
        {
            // An object id has no fallback: the mapping's is about people.
            return None;
        }
        self.opts
            .mapping
            .as_ref()
            .and_then(|m| m.fallback.as_ref())
            .map(|(c, k)| (c.as_str(), *k))
    }

    /// Constants, `_update`, then the closing: the end of every payload.
    fn finish<'a>(
        &'a self,
        id: Identifier,
        mut w: PayloadWriter,
        mut canon: Option<Canon<'a>>,
    ) -> Result<Built, Invalid> {
        for k in &self.constants {
            w.key_prepared(&k.key);
            w.json_value(&k.value);
            if let Some(c) = canon.as_mut() {
                c.value(&k.name, &k.value);
            }
        }
        let n = w.attributes();
        if n > MAX_ATTRIBUTES {
            let who = if self.opts.object.is_some() {
                "object"
            } else {
                "person"
            };
            return Err(invalid(
                Some(&id.value),
                None,
                format!("{n} attributes; the Track API takes at most {MAX_ATTRIBUTES} per {who}: drop columns"),
            ));
        }
        // `_update` is a people's flag: in an objects or relationships file it would travel
        // as a literal attribute.
        if let (Some(o), true) = (&self.opts.object, w.has_update_key()) {
            return Err(invalid(
                Some(&id.value),
                Some("_update"),
                format!(
                    "_update is a flag of people (update existing people only), not an attribute \
of {}: drop the _update column",
                    o.kind_name()
                ),
            ));
        }
        if self.opts.update_only {
            w.key("_update");
            w.raw_value("true");
        }
        // `_update`, from --update-only or from the data itself, makes the send conditional.
        let conditional = w.has_update_key();
        let payload = w.finish();
        // An object travels as a v2 operation whatever the API (alone, to /api/v2/entity,
        // under --api v1): 32,000 bytes at most either way.
        if self.opts.api == Api::Batch || self.opts.object.is_some() {
            validate::operation_size(payload.len()).map_err(|v| Invalid {
                identifier: Some(id.value.clone()),
                violation: v,
            })?;
        }
        let hashes = match canon {
            Some(c) => {
                let attrs = crate::preview::AttrHashes::of(
                    c.pairs.iter().map(|(name, r)| (*name, &c.buf[r.clone()])),
                );
                (Some(c.hash()), Some(attrs))
            }
            None => (None, None),
        };
        Ok((id, n, payload, hashes, conditional))
    }

    fn csv(&self, rec: &csv::StringRecord) -> Result<Built, Invalid> {
        let field = |i: usize| rec.get(i).unwrap_or_default();
        let id_value = self.id_index.map(field).ok_or_else(|| self.missing_id())?;
        let id = match (self.fallback(), self.fallback_index) {
            (Some((col, kind)), Some(i)) if id_value.trim().is_empty() => {
                self.identifier(kind, col, field(i))?
            }
            _ => self.identifier(self.opts.id_kind, &self.opts.id_column, id_value)?,
        };
        let mut w = self.begin_payload(&id, rec.as_slice().len() + 96 + 16 * rec.len());
        let mut canon = self.opts.hash.then(Canon::default);
        for (i, col) in self.columns.iter().enumerate() {
            if matches!(col.role, Role::Identifier | Role::Dropped) {
                continue;
            }
            let cell = field(i);
            // An empty `created_at` is left out even under `--empty clear`: the API cannot
            // clear a creation date, and `""` is not Unix seconds.
            if cell.is_empty() && (!self.opts.clear_empty || col.name == CREATED_AT) {
                continue;
            }
            // Checked whenever the name is sent, an empty cell under `--empty clear` included.
            if let Some(p) = &col.name_problem {
                return Err(Invalid {
                    identifier: Some(id.value),
                    violation: p.clone(),
                });
            }
            if cell.is_empty() {
                w.key_prepared(&col.key);
                w.str_value("");
                if let Some(c) = canon.as_mut() {
                    c.str(&col.name, "");
                }
                continue;
            }
            match col.rule.as_ref().filter(|r| r.converts()) {
                Some(rule) => {
                    let v = rule.convert_str(cell).map_err(|m| {
                        invalid(
                            Some(&id.value),
                            Some(&col.source),
                            format!(
                                "column '{}' ({} -> {}): {m}",
                                col.source,
                                type_name(rule),
                                col.name
                            ),
                        )
                    })?;
                    self.write_value(&mut w, &mut canon, &id, &col.name, Some(&col.key), &v)?;
                }
                None if col.role == Role::CreatedAt => {
                    let secs = timestamp::parse_str(cell)
                        .map_err(|m| invalid(Some(&id.value), Some(CREATED_AT), m))?;
                    w.key_prepared(&col.key);
                    w.int_value(secs);
                    if let Some(c) = canon.as_mut() {
                        c.int(&col.name, secs);
                    }
                }
                None => self.write_str(&mut w, &mut canon, &id, col, cell)?,
            }
            if let Some(rule) = &col.rule {
                for (k, v) in &rule.set_when_present {
                    self.write_value(&mut w, &mut canon, &id, k, None, v)?;
                }
            }
        }
        self.finish(id, w, canon)
    }

    fn write_str<'a>(
        &self,
        w: &mut PayloadWriter,
        canon: &mut Option<Canon<'a>>,
        id: &Identifier,
        col: &'a Column,
        cell: &str,
    ) -> Result<(), Invalid> {
        if cell.len() > MAX_VALUE_BYTES {
            return Err(value_too_long(&id.value, &col.name, cell.len()));
        }
        w.key_prepared(&col.key);
        w.str_value(cell);
        if let Some(c) = canon.as_mut() {
            c.str(&col.name, cell);
        }
        Ok(())
    }

    fn write_value<'a>(
        &self,
        w: &mut PayloadWriter,
        canon: &mut Option<Canon<'a>>,
        id: &Identifier,
        name: &'a str,
        key: Option<&[u8]>,
        v: &Value,
    ) -> Result<(), Invalid> {
        // `created_at` is Unix seconds whatever rule produced it (a value map, a string type).
        let seconds;
        let v = if name == CREATED_AT && !v.is_i64() {
            seconds = timestamp::parse_json(v)
                .map(Value::from)
                .map_err(|m| invalid(Some(&id.value), Some(CREATED_AT), m))?;
            &seconds
        } else {
            v
        };
        let size = validate::value_bytes(v);
        if size > MAX_VALUE_BYTES {
            return Err(value_too_long(&id.value, name, size));
        }
        match key {
            Some(k) => w.key_prepared(k),
            None => {
                validate::attribute_name(name).map_err(|v| Invalid {
                    identifier: Some(id.value.clone()),
                    violation: v,
                })?;
                w.key(name)
            }
        }
        w.json_value(v);
        if let Some(c) = canon.as_mut() {
            c.value(name, v);
        }
        Ok(())
    }

    fn json_identifier(&self, column: &str, raw: Option<&Value>) -> Result<String, Invalid> {
        match raw {
            None => Err(self.missing_id()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => number_identifier(column, n),
            Some(Value::Null) => Ok(String::new()),
            Some(other) => Err(invalid(
                None,
                Some(column),
                format!(
                    "identifier '{column}' is a JSON {}: it must be a string or a number",
                    timestamp::json_kind(other)
                ),
            )),
        }
    }

    fn jsonl(&self, line: &[u8]) -> Result<Built, Invalid> {
        let fields = parse_object(line)?;
        let column = self.opts.id_column.as_str();
        let id_raw = fields
            .iter()
            .find(|(k, _)| *k == column)
            .map(|(_, v)| {
                json_object::read(v)
                    .map_err(|m| invalid(None, Some(column), format!("identifier '{column}' {m}")))
            })
            .transpose()?;
        let id_value = self.json_identifier(column, id_raw.as_ref())?;
        let id = self.identifier(self.opts.id_kind, column, &id_value)?;
        let mut w = self.begin_payload(&id, line.len() + 64);
        let mut canon = self.opts.hash.then(Canon::default);
        for (name, value) in &fields {
            let text = value.get();
            if *name == self.opts.id_column {
                continue;
            }
            if text == "null" && (!self.opts.clear_empty || *name == CREATED_AT) {
                continue;
            }
            // Checked whenever the name is sent, a null under `--empty clear` included.
            validate::attribute_name(name).map_err(|v| Invalid {
                identifier: Some(id.value.clone()),
                violation: v,
            })?;
            if text == "null" {
                w.key(name);
                w.str_value("");
                if let Some(c) = canon.as_mut() {
                    c.str(name, "");
                }
                continue;
            }
            if name == "_timestamp" && !self.timestamp_warned.replace(true) {
                warn_timestamp();
            }
            json_object::check(value)
                .map_err(|m| invalid(Some(&id.value), Some(name), format!("'{name}' {m}")))?;
            if name == CREATED_AT {
                let parsed: Value = json_object::read(value).unwrap_or(Value::Null);
                let secs = timestamp::parse_json(&parsed)
                    .map_err(|m| invalid(Some(&id.value), Some(CREATED_AT), m))?;
                w.key(name);
                w.int_value(secs);
                if let Some(c) = canon.as_mut() {
                    c.int(name, secs);
                }
                continue;
            }
            let size = json_object::value_bytes(value, MAX_VALUE_BYTES);
            if size > MAX_VALUE_BYTES {
                return Err(value_too_long(&id.value, name, size));
            }
            w.key(name);
            w.raw_value(text);
            if let Some(c) = canon.as_mut() {
                c.json(name, text);
            }
        }
        self.finish(id, w, canon)
    }

    /// JSONL through a mapping: values parsed, objects lifted or flattened, keys mapped.
    fn jsonl_mapped(&self, line: &[u8]) -> Result<Built, Invalid> {
        let Some(m) = self.opts.mapping.as_deref() else {
            return self.jsonl(line);
        };
        let fields = parse_object(line)?;
        let column = self.opts.id_column.as_str();
        let mut values: Vec<(String, Value)> = Vec::with_capacity(fields.len());
        for (k, v) in &fields {
            match json_object::read(v) {
                Ok(value) => values.push((k.to_string(), value)),
                Err(msg) => {
                    // Name the person when the identifier itself reads.
                    let id = fields
                        .iter()
                        .find(|(s, _)| m.resolve(s).0.as_deref() == Some(column))
                        .and_then(|(_, v)| json_object::read(v).ok())
                        .and_then(|v| self.json_identifier(column, Some(&v)).ok());
                    return Err(invalid(
                        id.as_deref().filter(|s| !s.is_empty()),
                        Some(k),
                        format!("field '{k}' {msg}"),
                    ));
                }
            }
        }
        // (source name, attribute name, rule, value)
        let mut attrs: Vec<(String, String, Option<&Rule>, Value)> = Vec::new();
        for (source, value) in crate::mapping::reshape(m, values) {
            let (target, rule) = m.resolve(&source);
            if let Some(t) = target {
                match attrs.iter_mut().find(|a| a.1 == t) {
                    Some(slot) => *slot = (source, t, rule, value),
                    None => attrs.push((source, t, rule, value)),
                }
            }
        }
        let find = |name: &str| attrs.iter().find(|a| a.1 == name).map(|a| &a.3);
        let mut id_value = self.json_identifier(column, find(column))?;
        let mut kind = self.opts.id_kind;
        let mut id_col = column;
        if id_value.trim().is_empty() {
            if let Some((col, k)) = self.fallback() {
                if let Some(v) = find(col) {
                    id_value = self.json_identifier(col, Some(v))?;
                    kind = k;
                    id_col = col;
                }
            }
        }
        let id = self.identifier(kind, id_col, &id_value)?;
        let mut w = self.begin_payload(&id, line.len() + 64);
        let mut canon = self.opts.hash.then(Canon::default);
        let mut converted: Vec<(String, Value)> = Vec::with_capacity(attrs.len());
        for (source, name, rule, value) in attrs {
            if name == column {
                continue;
            }
            if value.is_null() {
                if self.opts.clear_empty && name != CREATED_AT {
                    converted.push((name, Value::String(String::new())));
                }
                continue;
            }
            let value = match &rule {
                Some(r) if r.converts() => r.convert_json(value).map_err(|msg| {
                    invalid(
                        Some(&id.value),
                        Some(&source),
                        format!("field '{source}' ({} -> {name}): {msg}", type_name(r)),
                    )
                })?,
                // `created_at` becomes Unix seconds in `write_value`, like every value.
                _ => value,
            };
            if name == "_timestamp" && !self.timestamp_warned.replace(true) {
                warn_timestamp();
            }
            converted.push((name, value));
            if let Some(r) = &rule {
                for (k, v) in &r.set_when_present {
                    converted.push((k.clone(), v.clone()));
                }
            }
        }
        for (name, value) in &converted {
            self.write_value(&mut w, &mut canon, &id, name, None, value)?;
        }
        self.finish(id, w, canon)
    }
}

/// The largest magnitude below which every integer is exactly a double (2^53).
const EXACT_DOUBLE: f64 = 9_007_199_254_740_992.0;

/// A JSON number as an identifier: integers as written; a whole number written as a float
/// (`123.0`, `1e2`, as pandas exports integer ids) as that integer (`123`, `100`), never its
/// float spelling. A fraction, or a float too large to stand for one integer exactly, makes
/// the row invalid.
fn number_identifier(column: &str, n: &serde_json::Number) -> Result<String, Invalid> {
    if n.is_i64() || n.is_u64() {
        return Ok(n.to_string());
    }
    let x = n.as_f64().unwrap_or(f64::NAN);
    if x.is_finite() && x.fract() == 0.0 && x.abs() < EXACT_DOUBLE {
        return Ok((x as i64).to_string());
    }
    let problem = if x.is_finite() && x.fract() != 0.0 {
        "not a whole number"
    } else {
        "too large to be read exactly"
    };
    Err(invalid(
        None,
        Some(column),
        format!(
            "identifier '{column}' is the number {n}, {problem}: write the identifier as a string (\"...\") or as a whole number"
        ),
    ))
}

/// What a conversion yields: identifier, attribute count, payload, attribute hash, and
/// whether the send is conditional (`_update`).
type Built = (
    Identifier,
    usize,
    Vec<u8>,
    (Option<[u8; 16]>, Option<Box<[u8]>>),
    bool,
);

/// The canonical form of a row's attributes, for the ledger's hash: sorted by name, each value
/// tagged with its exact type (the string "42" and the number 42 differ; so do 1 and 1.0),
/// nested objects with sorted keys. Independent of column order and JSON spacing.
#[derive(Default)]
struct Canon<'a> {
    buf: Vec<u8>,
    pairs: Vec<(&'a str, std::ops::Range<usize>)>,
}

impl<'a> Canon<'a> {
    fn push(&mut self, name: &'a str, tag: u8, bytes: &[u8]) {
        let start = self.buf.len();
        self.buf.push(tag);
        self.buf
            .extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        self.buf.extend_from_slice(bytes);
        self.pairs.push((name, start..self.buf.len()));
    }

    fn str(&mut self, name: &'a str, s: &str) {
        self.push(name, b's', s.as_bytes());
    }

    fn int(&mut self, name: &'a str, n: i64) {
        self.push(name, b'n', n.to_string().as_bytes());
    }

    fn value(&mut self, name: &'a str, v: &Value) {
        let start = self.buf.len();
        canon_json(v, &mut self.buf);
        self.pairs.push((name, start..self.buf.len()));
    }

    fn json(&mut self, name: &'a str, text: &str) {
        let start = self.buf.len();
        match serde_json::from_str::<Value>(text) {
            Ok(v) => canon_json(&v, &mut self.buf),
            Err(_) => self.buf.extend_from_slice(text.as_bytes()),
        }
        self.pairs.push((name, start..self.buf.len()));
    }

    fn hash(mut self) -> [u8; 16] {
        self.pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for (name, range) in &self.pairs {
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(&self.buf[range.clone()]);
        }
        h.digest128().to_le_bytes()
    }
}

fn canon_json(v: &Value, out: &mut Vec<u8>) {
    let tagged = |tag: u8, bytes: &[u8], out: &mut Vec<u8>| {
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    match v {
        Value::Null => out.push(b'z'),
        Value::Bool(b) => tagged(b'b', &[u8::from(*b)], out),
        Value::Number(n) => tagged(b'n', n.to_string().as_bytes(), out),
        Value::String(s) => tagged(b's', s.as_bytes(), out),
        Value::Array(a) => {
            out.push(b'[');
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            for x in a {
                canon_json(x, out);
            }
        }
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
            for (k, x) in entries {
                tagged(b'k', k.as_bytes(), out);
                canon_json(x, out);
            }
        }
    }
}

fn value_too_long(id: &str, name: &str, n: usize) -> Invalid {
    invalid(
        Some(id),
        Some(name),
        format!("value of '{name}' is {n} bytes; the Track API allows at most {MAX_VALUE_BYTES}: shorten it"),
    )
}

/// Parses one JSONL line as an object, with messages that say what the line is instead.
fn parse_object(line: &[u8]) -> Result<Members<'_>, Invalid> {
    json_object::parse(line).map_err(|e| {
        let first = line.iter().find(|b| !b.is_ascii_whitespace()).copied();
        let kind = match first {
            Some(b'[') => Some("an array"),
            Some(b'"') => Some("a string"),
            Some(b't' | b'f') => Some("a boolean"),
            Some(b'n') => Some("null"),
            Some(b'-' | b'0'..=b'9') => Some("a number"),
            _ => None,
        };
        let message = match kind {
            Some(k) if serde_json::from_slice::<Value>(line).is_ok() => {
                format!("line is {k}, not a JSON object: each line must be one {{...}} person")
            }
            _ => format!("line is not valid JSON ({e}): fix or remove it"),
        };
        invalid(None, None, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(api: Api) -> ConvertOptions {
        ConvertOptions {
            hash: true,
            ..ConvertOptions::new(IdKind::Id, "id", api)
        }
    }
    const POS: Position = Position { row: 1, line: 2 };

    fn csv(api: Api, cells: &[&str]) -> Result<Operation, (Invalid, RawRow)> {
        let header: Vec<String> = ["id", "zip", "created_at", "note"]
            .map(String::from)
            .to_vec();
        let c = Converter::new(opts(api), Some(&header)).unwrap();
        c.convert(POS, RawRow::Csv(csv::StringRecord::from(cells.to_vec())))
    }

    fn payload(r: &Operation) -> Value {
        serde_json::from_slice(&r.payload).unwrap()
    }

    #[test]
    fn csv_values_stay_strings_and_empty_cells_are_left_out() {
        let r = csv(Api::V1, &["42", "02134", "2023-11-14", ""]).unwrap();
        assert_eq!(r.identifier.value, "42");
        assert_eq!(r.attributes, 2);
        assert_eq!(
            String::from_utf8(r.payload).unwrap(),
            r#"{"zip":"02134","created_at":1699920000}"#
        );
        let r = csv(Api::Batch, &["42", "02134", "", "a \"q\"\n"]).unwrap();
        assert_eq!(
            payload(&r),
            json!({"type":"person","identifiers":{"id":"42"},"action":"identify","attributes":{"zip":"02134","note":"a \"q\"\n"}})
        );
    }

    #[test]
    fn bad_created_at_and_missing_id_are_invalid_with_the_field() {
        let (e, _) = csv(Api::V1, &["42", "1", "last tuesday", ""]).unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("created_at"));
        assert!(e.message().contains("accepted:"));
        let (e, _) = csv(Api::V1, &["", "1", "", ""]).unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("id"));
    }

    fn jsonl(line: &str) -> Result<Operation, (Invalid, RawRow)> {
        Converter::new(opts(Api::V1), None)
            .unwrap()
            .convert(POS, RawRow::Line(line.as_bytes().to_vec()))
    }

    #[test]
    fn json_keeps_types_and_numbers_as_ids() {
        let r = jsonl(r#"{"id":7,"age":31,"vip":true,"gone":null,"tags":["a", "b"],"created_at":1700000000123,"age":32}"#).unwrap();
        assert_eq!(r.identifier.value, "7");
        assert_eq!(
            payload(&r),
            json!({"age":32,"vip":true,"tags":["a","b"],"created_at":1700000000})
        );
    }

    #[test]
    fn whole_float_ids_are_spelled_as_integers_and_fractions_are_invalid() {
        let id = |line: &str| jsonl(line).map(|r| r.identifier.value);
        assert_eq!(id(r#"{"id":123.0}"#).unwrap(), "123");
        assert_eq!(id(r#"{"id":1e2}"#).unwrap(), "100");
        assert_eq!(
            id(r#"{"id":18446744073709551615}"#).unwrap(),
            "18446744073709551615"
        );
        let (e, _) = jsonl(r#"{"id":1.5}"#).unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("id"));
        assert!(
            e.violation.message.contains("1.5"),
            "{}",
            e.violation.message
        );
        assert!(jsonl(r#"{"id":1e300}"#).is_err());
    }

    #[test]
    fn json_lines_that_are_not_objects_say_what_they_are() {
        for (line, needle) in [
            ("[1,2]", "is an array"),
            ("\"s\"", "is a string"),
            ("12", "is a number"),
            ("{\"id\":1,", "not valid JSON"),
            ("{\"id\":1} x", "not valid JSON"),
            ("NaN", "not valid JSON"),
        ] {
            let (e, _) = jsonl(line).unwrap_err();
            assert!(e.message().contains(needle), "{line}: {}", e.message());
        }
        let (e, _) = jsonl(r#"{"id":{"a":1}}"#).unwrap_err();
        assert!(e.message().contains("JSON object"), "{}", e.message());
    }

    #[test]
    fn mapping_constants_are_checked_and_created_at_is_unix_seconds() {
        let with = |constants: &str| {
            let m = Mapping::parse(&format!("[constants]\n{constants}\n"), "m").unwrap();
            let o = ConvertOptions {
                mapping: Some(std::sync::Arc::new(m)),
                ..opts(Api::V1)
            };
            Converter::new(o, None)
        };
        let c = with("created_at = \"2024-05-01T12:00:00Z\"").unwrap();
        let r = c
            .convert(POS, RawRow::Line(br#"{"id":"1"}"#.to_vec()))
            .unwrap();
        assert_eq!(payload(&r), json!({"created_at": 1_714_564_800}));
        let e = with("created_at = \"soon\"").unwrap_err();
        assert!(e.contains("created_at") && e.contains("accepted:"), "{e}");
        let e = with(&format!("{} = 1", "k".repeat(151))).unwrap_err();
        assert!(e.contains("151 bytes") && e.contains("rename"), "{e}");
        let e = with("\"\" = 1").unwrap_err();
        assert!(e.contains("empty name"), "{e}");
    }

    #[test]
    fn json_value_sizes_are_measured_decoded() {
        // 500 two-byte characters written as \u escapes: 3000 bytes of text, 1000 decoded.
        let escaped = "\\u00e9".repeat(500);
        assert!(jsonl(&format!(r#"{{"id":"1","v":"{escaped}"}}"#)).is_ok());
        let (e, _) = jsonl(&format!(r#"{{"id":"1","v":"{escaped}x"}}"#)).unwrap_err();
        assert!(e.message().contains("1001 bytes"), "{}", e.message());
    }
}

#[cfg(test)]
mod hash_tests {
    use super::*;

    fn hash_of(header: &[&str], cells: &[&str]) -> [u8; 16] {
        let opts = ConvertOptions {
            hash: true,
            ..ConvertOptions::new(IdKind::Id, "id", Api::Batch)
        };
        let header: Vec<String> = header.iter().map(|s| s.to_string()).collect();
        let c = Converter::new(opts, Some(&header)).unwrap();
        let rec = c.convert(
            Position { row: 1, line: 2 },
            RawRow::Csv(csv::StringRecord::from(cells.to_vec())),
        );
        rec.unwrap().hash.unwrap()
    }

    fn hash_json(line: &str) -> [u8; 16] {
        let opts = ConvertOptions {
            hash: true,
            ..ConvertOptions::new(IdKind::Id, "id", Api::Batch)
        };
        let c = Converter::new(opts, None).unwrap();
        c.convert(
            Position { row: 1, line: 1 },
            RawRow::Line(line.as_bytes().to_vec()),
        )
        .unwrap()
        .hash
        .unwrap()
    }

    #[test]
    fn the_hash_ignores_column_order_and_spacing_but_not_values_or_types() {
        let a = hash_of(&["id", "a", "b"], &["1", "x", "y"]);
        assert_eq!(a, hash_of(&["b", "id", "a"], &["y", "1", "x"]));
        assert_ne!(a, hash_of(&["id", "a", "b"], &["1", "x", "z"]));
        assert_ne!(a, hash_of(&["id", "a", "c"], &["1", "x", "y"]));
        // Boundaries between names and values cannot be confused.
        assert_ne!(
            hash_of(&["id", "ab"], &["1", "c"]),
            hash_of(&["id", "a"], &["1", "bc"])
        );
        assert_eq!(
            hash_json(r#"{"id":"1","o":{"b":1,"a":[1,"2"]}}"#),
            hash_json(r#"{ "o": {"a": [1, "2"], "b": 1}, "id": "1" }"#)
        );
        assert_ne!(
            hash_json(r#"{"id":"1","n":42}"#),
            hash_json(r#"{"id":"1","n":"42"}"#)
        );
        assert_ne!(
            hash_json(r#"{"id":"1","n":1}"#),
            hash_json(r#"{"id":"1","n":1.0}"#)
        );
        // A CSV string and a JSON string are the same value.
        assert_eq!(
            hash_of(&["id", "n"], &["1", "42"]),
            hash_json(r#"{"id":"1","n":"42"}"#)
        );
    }
}
