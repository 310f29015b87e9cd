//! Objects (`--kind objects --object-type-id N`): one row is one object (a company, an
//! account...) of one object type. Its id comes from `--object-id-column` (default
//! `object_id`); every other column is one of its attributes, read, mapped, typed and checked
//! exactly as a person's (the same limits: 150-byte id and names, 1000-byte values, 300
//! attributes, 32,000 bytes per operation, which keeps the object's attributes well under
//! the documented 100 KB). `--action delete` deletes the objects the file names.
//!
//! The rows of a relationships file (`--kind relationships`) are read in
//! [`super::relationship`]; both share [`ObjectOptions`].

use super::{invalid, Column, Converter, Invalid, Role};
use crate::operation::{Action, Entity, Operation};
use crate::record::{Identifier, ObjectRef, Position, RawRow};
use crate::track::objects::object_delete_payload;

/// The default of `--object-id-column`.
pub const OBJECT_ID_COLUMN: &str = "object_id";

/// Which rows a run reads: objects, or people's relationships to objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// `--kind objects`: one row is one object and its attributes.
    Objects,
    /// `--kind relationships`: one row is one person's relationship to one object.
    Relationships,
}

/// The object type and the column of the object id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectOptions {
    /// Objects or relationships.
    pub kind: ObjectKind,
    /// `--object-type-id`: a string-formatted integer from 1 (`"1"` is the first object type a
    /// workspace defines).
    pub type_id: String,
    /// `--object-id-column` (after mapping).
    pub id_column: String,
}

/// The `--kind` of a run that is not about people's attributes (objects, relationships,
/// devices, merges), as the option spells it; `None` for people (and events, by person).
/// The ledger's people table says nothing about these: a preview or `--max-change` against
/// it would be wrong.
pub fn kind_other_than_people(opts: &super::ConvertOptions) -> Option<&'static str> {
    use crate::operation::Action;
    match (&opts.object, opts.action) {
        (Some(o), _) => Some(o.kind_name()),
        (None, Action::AddDevice | Action::DeleteDevice) => Some("devices"),
        (None, Action::Merge) => Some("merges"),
        _ => None,
    }
}

impl ObjectOptions {
    /// `objects` or `relationships`, as `--kind` spells it.
    pub fn kind_str(kind: ObjectKind) -> &'static str {
        match kind {
            ObjectKind::Objects => "objects",
            ObjectKind::Relationships => "relationships",
        }
    }

    /// This run's kind, as `--kind` spells it.
    pub fn kind_name(&self) -> &'static str {
        Self::kind_str(self.kind)
    }

    /// The object of this type with id `id`.
    pub fn object(&self, id: &str) -> ObjectRef {
        ObjectRef {
            type_id: self.type_id.clone(),
            id: id.to_string(),
        }
    }
}

/// Checks `--object-type-id`: the Track API's object type ids are string-formatted integers
/// starting at 1.
pub fn check_type_id(s: &str) -> Result<(), String> {
    match s.parse::<u64>() {
        Ok(n) if n >= 1 && n.to_string() == s => Ok(()),
        _ => Err(format!(
            "--object-type-id '{s}' is not an object type id: Customer.io numbers object types \
1, 2, 3... in the order they were created (Data & Integrations > Objects shows them)"
        )),
    }
}

/// With a header: the object id column must be there (objects read it as the row's
/// identifier, relationships beside the person's).
pub(super) fn check_header(
    o: &ObjectOptions,
    person_column: &str,
    header: Option<&[String]>,
    columns: &[Column],
    mapped: bool,
) -> Result<(), String> {
    if header.is_none() {
        return Ok(());
    }
    let present = |name: &str| {
        columns
            .iter()
            .any(|c| c.role != Role::Dropped && c.name == name)
    };
    if !present(&o.id_column) {
        let names: Vec<&str> = columns.iter().map(|c| c.source.as_str()).collect();
        return Err(format!(
            "no column becomes the object id '{}' (columns: {}): choose one with \
--object-id-column{}",
            o.id_column,
            names.join(", "),
            if mapped {
                ", or rename a column to it in the mapping"
            } else {
                ""
            }
        ));
    }
    if o.kind == ObjectKind::Relationships && o.id_column == person_column {
        return Err(format!(
            "'{}' is both the person's identifier column and the object id column: name the \
person's with --id-column and the object's with --object-id-column",
            o.id_column
        ));
    }
    Ok(())
}

impl Converter {
    /// Converts one row of `--kind objects` or `--kind relationships`.
    pub(super) fn convert_object_kind(
        &self,
        o: &ObjectOptions,
        pos: Position,
        raw: RawRow,
    ) -> Result<Operation, (Invalid, RawRow)> {
        match (o.kind, self.opts.action) {
            (ObjectKind::Relationships, _) => self.convert_relationship(o, pos, raw),
            (ObjectKind::Objects, Action::Delete) => self.convert_object_delete(o, pos, raw),
            (ObjectKind::Objects, _) => self.convert_object_identify(o, pos, raw),
        }
    }

    /// An object's identify: the people path with the object's frame (see
    /// [`Converter::begin_payload`]).
    fn convert_object_identify(
        &self,
        o: &ObjectOptions,
        pos: Position,
        raw: RawRow,
    ) -> Result<Operation, (Invalid, RawRow)> {
        let built = match &raw {
            RawRow::Csv(rec) => self.csv(rec),
            RawRow::Line(line) if self.opts.mapping.is_some() => self.jsonl_mapped(line),
            RawRow::Line(line) => self.jsonl(line),
            RawRow::CsvBytes(_) | RawRow::CsvLine(_) => {
                Err(invalid(None, None, "not a readable CSV row".into()))
            }
        };
        match built {
            Ok((identifier, attributes, payload, hash, _)) => Ok(Operation {
                pos,
                entity: Entity::Object,
                action: Action::Identify,
                object: Some(Box::new(o.object(&identifier.value))),
                identifier: object_label(identifier),
                event_id: None,
                attributes,
                payload,
                raw,
                hash: hash.0,
                attrs: None,
                conditional: false,
                forget_first: false,
                target: None,
            }),
            Err(inv) => Err((object_message(inv, o), raw)),
        }
    }

    /// An object's delete: its id only, every other column ignored.
    fn convert_object_delete(
        &self,
        o: &ObjectOptions,
        pos: Position,
        raw: RawRow,
    ) -> Result<Operation, (Invalid, RawRow)> {
        let id = match &raw {
            RawRow::Csv(rec) => self.csv_identifier(rec),
            RawRow::Line(line) => self.jsonl_identifier(line),
            RawRow::CsvBytes(_) | RawRow::CsvLine(_) => {
                Err(invalid(None, None, "not a readable CSV row".into()))
            }
        };
        match id {
            Ok(identifier) => {
                let object = o.object(&identifier.value);
                Ok(Operation {
                    pos,
                    entity: Entity::Object,
                    action: Action::Delete,
                    payload: object_delete_payload(&object),
                    object: Some(Box::new(object)),
                    identifier: object_label(identifier),
                    event_id: None,
                    attributes: 0,
                    raw,
                    hash: None,
                    attrs: None,
                    conditional: false,
                    forget_first: false,
                    target: None,
                })
            }
            Err(inv) => Err((object_message(inv, o), raw)),
        }
    }
}

/// The people rules name the id column "identifier": for an object, it is its object id.
fn object_message(mut inv: Invalid, o: &ObjectOptions) -> Invalid {
    if inv.violation.field.as_deref() == Some(o.id_column.as_str()) {
        inv.violation.message = inv
            .violation
            .message
            .replacen("identifier", "object id", 1)
            .replace("--id-column", "--object-id-column");
    }
    inv
}

/// An object's id where an operation holds an identifier (for messages and reports only:
/// the object itself is in [`Operation::object`]).
fn object_label(id: Identifier) -> Identifier {
    Identifier {
        kind: crate::record::IdKind::Id,
        value: id.value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::ConvertOptions;
    use crate::record::IdKind;
    use crate::track::Api;
    use serde_json::{json, Value};

    fn converter(api: Api, action: Action, header: &[&str]) -> Result<Converter, String> {
        let opts = ConvertOptions {
            hash: true,
            action,
            object: Some(ObjectOptions {
                kind: ObjectKind::Objects,
                type_id: "2".into(),
                id_column: "object_id".into(),
            }),
            ..ConvertOptions::new(IdKind::Id, "object_id", api)
        };
        let header: Vec<String> = header.iter().map(|s| s.to_string()).collect();
        Converter::new(opts, Some(&header))
    }

    const POS: Position = Position { row: 1, line: 2 };

    fn row(cells: &[&str]) -> RawRow {
        RawRow::Csv(csv::StringRecord::from(cells.to_vec()))
    }

    #[test]
    fn an_object_row_becomes_object_identify_whatever_the_api() {
        for api in [Api::Batch, Api::V1] {
            let c = converter(api, Action::Identify, &["object_id", "name", "seats"]).unwrap();
            let op = c.convert(POS, row(&["acme", "Acme", "50"])).unwrap();
            assert_eq!(op.entity, Entity::Object);
            assert!(op.hash.is_some());
            let v: Value = serde_json::from_slice(&op.payload).unwrap();
            assert_eq!(
                v,
                json!({"type":"object","identifiers":{"object_type_id":"2","object_id":"acme"},
                    "action":"identify","attributes":{"name":"Acme","seats":"50"}})
            );
        }
        let c = converter(Api::Batch, Action::Delete, &["object_id", "name"]).unwrap();
        let op = c.convert(POS, row(&["acme", "x"])).unwrap();
        let v: Value = serde_json::from_slice(&op.payload).unwrap();
        assert_eq!(v["action"], "delete");
        assert_eq!(op.hash, None);
    }

    #[test]
    fn object_limits_are_checked_at_the_row() {
        let c = converter(Api::Batch, Action::Identify, &["object_id", "name"]).unwrap();
        let (e, _) = c
            .convert(POS, row(&[&"a".repeat(151), "Acme"]))
            .unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("object_id"));
        let (e, _) = c.convert(POS, row(&["", "Acme"])).unwrap_err();
        assert!(e.message().contains("empty"), "{}", e.message());
        let (e, _) = c
            .convert(POS, row(&["acme", &"n".repeat(1001)]))
            .unwrap_err();
        assert!(e.message().contains("1001 bytes"), "{}", e.message());
        let e = converter(Api::Batch, Action::Identify, &["id", "name"]).unwrap_err();
        assert!(e.contains("--object-id-column"), "{e}");
        assert!(check_type_id("1").is_ok());
        assert!(check_type_id("0").is_err());
        assert!(check_type_id("01").is_err());
        assert!(check_type_id("companies").is_err());
    }
}
