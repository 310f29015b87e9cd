//! Events (`--kind events`): one row is one event on one person. The identifier follows the
//! people rules (`--id-column`, `--identify-by`, a mapping's fallback); the event's name,
//! time and id come from their columns; every other column is the event's data (JSONL keeps
//! its types, CSV cells are strings, a mapping renames and types them as for people).
//!
//! Every event carries an id, so that Customer.io keeps one copy however often the file is
//! imported: the file's id when it is a valid ULID, otherwise one derived from the event
//! ([`crate::event_id::derive`]). A value in the id column that is not a ULID stays in the
//! data under its column's name (an order number, say), and so takes part in the derived id.

use super::{canon_json, invalid, parse_object, type_name, Converter, Invalid, Role};
use crate::config::ImportConfig;
use crate::event_id;
use crate::json_object;
use crate::operation::{Action, Entity, Operation};
use crate::record::{Identifier, Position, RawRow};
use crate::source::Item;
use crate::timestamp;
use crate::track::{event_payload, Api};
use crate::validate::{self, MAX_EVENT_DATA_BYTES, MAX_EVENT_NAME_BYTES};
use serde_json::{Map, Value};

/// The default of `--name-column`.
pub const NAME_COLUMN: &str = "name";
/// The default of `--timestamp-column`.
pub const TIMESTAMP_COLUMN: &str = "timestamp";
/// The default of `--event-id-column` (not `id`, which is the person's identifier).
pub const EVENT_ID_COLUMN: &str = "event_id";

/// Events within this many seconds before now may trigger campaigns in Customer.io.
pub const RECENT_S: i64 = 72 * 3600;

/// Which columns hold an event's name, time and id, and the workspace its derived ids
/// belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventOptions {
    /// The column of the event's name.
    pub name_column: String,
    /// The column of its time (any `created_at` format; to Unix seconds).
    pub timestamp_column: String,
    /// The column of its id (used when it holds a ULID).
    pub id_column: String,
    /// What tells workspaces apart in derived ids: the site id and the API host.
    pub workspace: String,
}

impl Default for EventOptions {
    fn default() -> Self {
        EventOptions {
            name_column: NAME_COLUMN.into(),
            timestamp_column: TIMESTAMP_COLUMN.into(),
            id_column: EVENT_ID_COLUMN.into(),
            workspace: String::new(),
        }
    }
}

/// One converted event.
struct Built {
    identifier: Identifier,
    event_id: String,
    /// The id came from the file (not derived from the event).
    own_id: bool,
    timestamp: Option<i64>,
    payload: Vec<u8>,
    attributes: usize,
}

impl Converter {
    /// Converts one row into an event operation.
    pub(super) fn convert_event(
        &self,
        ev: &EventOptions,
        pos: Position,
        raw: RawRow,
    ) -> Result<Operation, (Invalid, RawRow)> {
        let built = self.build_event(ev, &raw).and_then(|b| {
            if b.own_id {
                self.first_use_of_id(ev, &b, pos)?;
            }
            Ok(b)
        });
        match built {
            Ok(b) => Ok(Operation {
                pos,
                entity: Entity::Person,
                action: Action::Event,
                identifier: b.identifier,
                event_id: Some(b.event_id.into_boxed_str()),
                object: None,
                attributes: b.attributes,
                payload: b.payload,
                raw,
                // With a ledger, an acknowledged event is recorded by its id: the hash is
                // only the mark that it should be.
                hash: self.opts.hash.then_some([0; 16]),
                attrs: None,
                conditional: false,
                forget_first: false,
                target: None,
            }),
            Err(inv) => Err((inv, raw)),
        }
    }

    /// A file's own event id must be used once: Customer.io keeps the first event of an id
    /// and drops the others while answering 200, so a second row with the same id would be
    /// counted sent and never stored. (Derived ids repeat only for identical events, which
    /// are meant to be stored once.) Remembers each such id with its line: about 30 bytes per
    /// event that carries its own id.
    fn first_use_of_id(&self, ev: &EventOptions, b: &Built, pos: Position) -> Result<(), Invalid> {
        let Ok(key) = ulid::Ulid::from_string(&b.event_id) else {
            return Ok(());
        };
        let mut seen = self.event_ids.borrow_mut();
        match seen.entry(key.0) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(pos.line);
                Ok(())
            }
            std::collections::hash_map::Entry::Occupied(o) => Err(invalid(
                Some(&b.identifier.value),
                Some(&ev.id_column),
                format!(
                    "event id {} is also the id of the event on line {}: Customer.io keeps only \
the first event of an id; give each event its own id",
                    b.event_id,
                    o.get()
                ),
            )),
        }
    }

    /// The event of a row: its person, name, time, id, data and payload.
    fn build_event(&self, ev: &EventOptions, raw: &RawRow) -> Result<Built, Invalid> {
        let (identifier, values) = match raw {
            RawRow::Csv(rec) => self.event_csv(rec)?,
            RawRow::Line(line) => self.event_jsonl(line)?,
            RawRow::CsvBytes(_) | RawRow::CsvLine(_) => {
                return Err(invalid(None, None, "not a readable CSV row".into()))
            }
        };
        let who = Some(identifier.value.as_str());
        let mut name = None;
        let mut time = None;
        let mut file_id = None;
        let mut data = Map::new();
        for (k, v) in values {
            if v.is_null() {
                continue;
            }
            if k == ev.name_column {
                name = Some(v);
            } else if k == ev.timestamp_column {
                time = Some(v);
            } else if k == ev.id_column && v.as_str().and_then(event_id::from_file).is_some() {
                file_id = v.as_str().and_then(event_id::from_file);
            } else {
                data.insert(k, v);
            }
        }
        let col = ev.name_column.as_str();
        let name = match name {
            None => {
                return Err(invalid(
                    who,
                    Some(col),
                    format!("event name '{col}' is missing: add it, or choose another column with --name-column"),
                ))
            }
            Some(Value::String(s)) => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(invalid(
                    who,
                    Some(col),
                    format!(
                        "event name '{col}' is a JSON {}: it must be a string",
                        timestamp::json_kind(&other)
                    ),
                ))
            }
        };
        if name.is_empty() {
            return Err(invalid(
                who,
                Some(col),
                format!("event name '{col}' is empty: fill it in or drop the row"),
            ));
        }
        if name.len() > MAX_EVENT_NAME_BYTES {
            return Err(invalid(
                who,
                Some(col),
                format!(
                    "event name is {} bytes; the Track API takes at most {MAX_EVENT_NAME_BYTES}",
                    name.len()
                ),
            ));
        }
        let tcol = ev.timestamp_column.as_str();
        let timestamp = match &time {
            None => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(timestamp::parse_str(s)),
            Some(v) => Some(timestamp::parse_json(v)),
        }
        .transpose()
        .map_err(|m| invalid(who, Some(tcol), format!("event timestamp '{tcol}': {m}")))?;
        let data_bytes = serde_json::to_vec(&data).map(|v| v.len()).unwrap_or(0);
        if data_bytes > MAX_EVENT_DATA_BYTES {
            return Err(invalid(
                who,
                None,
                format!(
                    "the event's data is {data_bytes} bytes; the Track API takes at most \
{MAX_EVENT_DATA_BYTES}: drop or shorten columns"
                ),
            ));
        }
        let own_id = file_id.is_some();
        let event_id = match (file_id, timestamp) {
            (Some(id), _) => id,
            // Customer.io stamps an untimed event when it arrives, but an id derived from it
            // would be the same every run: a recurring event would be kept once, ever, and the
            // later ones counted sent and dropped. It needs a time or an id of its own.
            (None, None) => {
                return Err(invalid(
                    who,
                    Some(tcol),
                    format!(
                        "the event has no time ('{tcol}') and no ULID id ('{}'): give it one \
(or name the columns with --timestamp-column / --event-id-column), so that a re-import neither \
doubles nor drops it",
                        ev.id_column
                    ),
                ))
            }
            (None, Some(_)) => {
                let mut canon = Vec::with_capacity(data_bytes + 16);
                canon_json(&Value::Object(data.clone()), &mut canon);
                event_id::derive(
                    &ev.workspace,
                    &identifier,
                    &name,
                    timestamp.unwrap_or(0),
                    &canon,
                )
            }
        };
        let payload = event_payload(
            self.opts.api,
            &identifier,
            &name,
            &event_id,
            timestamp,
            &data,
        );
        if self.opts.api == Api::Batch {
            validate::operation_size(payload.len()).map_err(|v| Invalid {
                identifier: Some(identifier.value.clone()),
                violation: v,
            })?;
        }
        Ok(Built {
            identifier,
            event_id,
            own_id,
            timestamp,
            payload,
            attributes: data.len(),
        })
    }

    /// A CSV row's identifier and its other non-empty cells, mapped and typed (also the
    /// reading of a relationship row).
    pub(super) fn event_csv(
        &self,
        rec: &csv::StringRecord,
    ) -> Result<(Identifier, Vec<(String, Value)>), Invalid> {
        let id = self.csv_identifier(rec)?;
        let mut values = Vec::with_capacity(rec.len());
        for (i, col) in self.columns.iter().enumerate() {
            if matches!(col.role, Role::Identifier | Role::Dropped) {
                continue;
            }
            let cell = rec.get(i).unwrap_or_default();
            if cell.is_empty() {
                continue;
            }
            let value = match col.rule.as_ref().filter(|r| r.converts()) {
                Some(rule) => rule.convert_str(cell).map_err(|m| {
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
                })?,
                None => Value::String(cell.to_string()),
            };
            values.push((col.name.clone(), value));
            if let Some(rule) = &col.rule {
                values.extend(rule.set_when_present.iter().cloned());
            }
        }
        Ok((id, values))
    }

    /// A JSON line's identifier and its other members (types kept), mapped when a mapping
    /// is given.
    pub(super) fn event_jsonl(
        &self,
        line: &[u8],
    ) -> Result<(Identifier, Vec<(String, Value)>), Invalid> {
        let id = self.jsonl_identifier(line)?;
        let fields = parse_object(line)?;
        let mut values: Vec<(String, Value)> = Vec::with_capacity(fields.len());
        for (k, v) in &fields {
            let value = json_object::read(v)
                .map_err(|m| invalid(Some(&id.value), Some(k), format!("field '{k}' {m}")))?;
            values.push((k.to_string(), value));
        }
        let column = self.opts.id_column.as_str();
        let Some(m) = self.opts.mapping.as_deref() else {
            values.retain(|(k, _)| k != column);
            return Ok((id, values));
        };
        let mut out = Vec::with_capacity(values.len());
        for (source, value) in crate::mapping::reshape(m, values) {
            let (target, rule) = m.resolve(&source);
            let Some(name) = target else { continue };
            if name == column || value.is_null() {
                continue;
            }
            let value = match rule.filter(|r| r.converts()) {
                Some(r) => r.convert_json(value).map_err(|msg| {
                    invalid(
                        Some(&id.value),
                        Some(&source),
                        format!("field '{source}' ({} -> {name}): {msg}", type_name(r)),
                    )
                })?,
                None => value,
            };
            out.push((name, value));
            if let Some(r) = rule {
                out.extend(r.set_when_present.iter().cloned());
            }
        }
        Ok((id, out))
    }
}

/// What the pre-pass of an events file found: the events that may trigger campaigns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecentEvents {
    /// Events that convert.
    pub events: u64,
    /// Of them, those timestamped within the last 72 hours, or without a timestamp (the API
    /// then takes them as happening now).
    pub recent: u64,
    /// Of the recent ones, those without a timestamp.
    pub untimed: u64,
}

impl RecentEvents {
    /// The warning shown before sending, when some events are recent.
    pub fn warning(&self, input: &str) -> Option<String> {
        (self.recent > 0).then(|| {
            let untimed = if self.untimed > 0 {
                format!(" ({} without a timestamp, so happening now)", self.untimed)
            } else {
                String::new()
            };
            format!(
                "warning: {} of {} events in {input} are within the last 72 hours{untimed}: \
Customer.io may trigger campaigns with them; give them their real timestamps, or pause \
event-triggered campaigns first",
                self.recent, self.events
            )
        })
    }
}

/// Reads an events file once and counts the events within 72 hours before `now_s` (or
/// without a time). Needs a file: stdin cannot be read twice.
pub fn count_recent(cfg: &ImportConfig, now_s: i64) -> Result<RecentEvents, String> {
    if !cfg.input.rereadable() {
        return Err("events from stdin or a pipe are not counted before sending".into());
    }
    let Some(ev) = cfg.convert.event.as_ref() else {
        return Ok(RecentEvents::default());
    };
    let (rows, converter) = crate::convert::prepass(cfg)?;
    let mut r = RecentEvents::default();
    for item in rows {
        let Item::Row { raw, .. } = item.map_err(|e| e.to_string())? else {
            continue;
        };
        if let Ok(b) = converter.build_event(ev, &raw) {
            r.events += 1;
            match b.timestamp {
                None => {
                    r.recent += 1;
                    r.untimed += 1;
                }
                Some(t) if t >= now_s - RECENT_S => r.recent += 1,
                Some(_) => {}
            }
        }
    }
    Ok(r)
}
