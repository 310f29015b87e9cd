//! Relationships (`--kind relationships --object-type-id N`): one row is one person's
//! relationship to one object. The person is found as for people (`--id-column`,
//! `--identify-by`, a mapping's fallback); the object's id comes from `--object-id-column`
//! (default `object_id`); every other non-empty column is an attribute of the relationship
//! (a role, say), mapped and typed as for people.
//!
//! The operation is the person's `add_relationships` (or, with `--action delete`,
//! `delete_relationships`, which carries no attributes), so it keeps its order with the
//! person's other operations. The relationship's attributes obey the object attribute limits:
//! names of at most 150 bytes, values of at most 1000, at most 300 of them, and the whole
//! operation at most 32,000 bytes (so their documented 100 KB total is never reached).

use super::{canon_json, invalid, Converter, Invalid, ObjectOptions};
use crate::operation::{Action, Entity, Operation};
use crate::record::{Identifier, Position, RawRow};
use crate::timestamp;
use crate::track::objects::relationship_payload;
use crate::validate::{self, MAX_ATTRIBUTES, MAX_ID_BYTES};
use serde_json::{Map, Value};

/// One converted relationship row.
struct Built {
    person: Identifier,
    object_id: String,
    attributes: Map<String, Value>,
}

impl Converter {
    /// Converts one relationship row.
    pub(super) fn convert_relationship(
        &self,
        o: &ObjectOptions,
        pos: Position,
        raw: RawRow,
    ) -> Result<Operation, (Invalid, RawRow)> {
        let action = match self.opts.action {
            Action::Delete | Action::DeleteRelationships => Action::DeleteRelationships,
            _ => Action::AddRelationships,
        };
        let built = self.build_relationship(o, &raw).and_then(|b| {
            let object = o.object(&b.object_id);
            let payload = relationship_payload(action, &b.person, &object, &b.attributes);
            validate::operation_size(payload.len()).map_err(|v| Invalid {
                identifier: Some(b.person.value.clone()),
                violation: v,
            })?;
            Ok((b, object, payload))
        });
        match built {
            Ok((b, object, payload)) => {
                let hash = (self.opts.hash && action == Action::AddRelationships).then(|| {
                    let mut canon = Vec::new();
                    canon_json(&Value::Object(b.attributes.clone()), &mut canon);
                    xxhash_rust::xxh3::xxh3_128(&canon).to_le_bytes()
                });
                Ok(Operation {
                    pos,
                    entity: Entity::Person,
                    action,
                    identifier: b.person,
                    event_id: None,
                    object: Some(Box::new(object)),
                    attributes: if action == Action::AddRelationships {
                        b.attributes.len()
                    } else {
                        0
                    },
                    payload,
                    raw,
                    hash,
                    attrs: None,
                    conditional: false,
                    forget_first: false,
                    target: None,
                })
            }
            Err(inv) => Err((inv, raw)),
        }
    }

    /// The person, the object id and the relationship's attributes of a row.
    fn build_relationship(&self, o: &ObjectOptions, raw: &RawRow) -> Result<Built, Invalid> {
        let (person, values) = match raw {
            RawRow::Csv(rec) => self.event_csv(rec)?,
            RawRow::Line(line) => self.event_jsonl(line)?,
            RawRow::CsvBytes(_) | RawRow::CsvLine(_) => {
                return Err(invalid(None, None, "not a readable CSV row".into()))
            }
        };
        let who = Some(person.value.as_str());
        let col = o.id_column.as_str();
        let mut object_id = None;
        let mut attributes = Map::new();
        for (k, v) in values {
            if k == col {
                object_id = Some(v);
                continue;
            }
            if v.is_null() {
                continue;
            }
            validate::attribute_name(&k).map_err(|v| Invalid {
                identifier: who.map(str::to_string),
                violation: v,
            })?;
            validate::attribute_value(&k, &v).map_err(|v| Invalid {
                identifier: who.map(str::to_string),
                violation: v,
            })?;
            attributes.insert(k, v);
        }
        let object_id = match object_id {
            None | Some(Value::Null) => {
                return Err(invalid(
                    who,
                    Some(col),
                    format!(
                        "object id '{col}' is missing: fill it in, or choose another column with \
--object-id-column"
                    ),
                ))
            }
            Some(Value::String(s)) => s,
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(invalid(
                    who,
                    Some(col),
                    format!(
                        "object id '{col}' is a JSON {}: it must be a string or a number",
                        timestamp::json_kind(&other)
                    ),
                ))
            }
        };
        if object_id.trim().is_empty() {
            return Err(invalid(
                who,
                Some(col),
                format!("object id '{col}' is empty: fill it in or drop the row"),
            ));
        }
        if object_id.len() > MAX_ID_BYTES {
            return Err(invalid(
                who,
                Some(col),
                format!(
                    "object id in '{col}' is {} bytes; the Track API allows at most {MAX_ID_BYTES}",
                    object_id.len()
                ),
            ));
        }
        if attributes.len() > MAX_ATTRIBUTES {
            return Err(invalid(
                who,
                None,
                format!(
                    "{} relationship attributes; the Track API takes at most {MAX_ATTRIBUTES}: \
drop columns",
                    attributes.len()
                ),
            ));
        }
        Ok(Built {
            person,
            object_id,
            attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{ConvertOptions, ObjectKind};
    use crate::operation::Key;
    use crate::record::IdKind;
    use crate::track::Api;
    use serde_json::json;

    fn converter(action: Action) -> Converter {
        let opts = ConvertOptions {
            hash: true,
            action,
            object: Some(ObjectOptions {
                kind: ObjectKind::Relationships,
                type_id: "1".into(),
                id_column: "company_id".into(),
            }),
            ..ConvertOptions::new(IdKind::Email, "email", Api::V1)
        };
        let header: Vec<String> = ["email", "company_id", "role"].map(String::from).to_vec();
        Converter::new(opts, Some(&header)).unwrap()
    }

    const POS: Position = Position { row: 1, line: 2 };

    fn row(cells: &[&str]) -> RawRow {
        RawRow::Csv(csv::StringRecord::from(cells.to_vec()))
    }

    #[test]
    fn a_row_relates_its_person_to_its_object() {
        let op = converter(Action::Identify)
            .convert(POS, row(&["a@b.io", "acme", "admin"]))
            .unwrap();
        assert_eq!(op.action, Action::AddRelationships);
        let v: Value = serde_json::from_slice(&op.payload).unwrap();
        assert_eq!(
            v,
            json!({"type":"person","identifiers":{"email":"a@b.io"},"action":"add_relationships",
                "cio_relationships":[{"identifiers":{"object_type_id":"1","object_id":"acme"},
                "relationship_attributes":{"role":"admin"}}]})
        );
        let person = Identifier {
            kind: IdKind::Email,
            value: "a@b.io".into(),
        };
        // Ordered with the person, named by the pair.
        assert_eq!(
            op.key().order_hash(),
            Key::Entity(Entity::Person, &person).order_hash()
        );
        assert_ne!(
            op.key().seen_hash(),
            Key::Entity(Entity::Person, &person).seen_hash()
        );
        let other = converter(Action::Identify)
            .convert(POS, row(&["a@b.io", "acme", "owner"]))
            .unwrap();
        assert_ne!(op.hash, other.hash);
        let del = converter(Action::Delete)
            .convert(POS, row(&["a@b.io", "acme", "admin"]))
            .unwrap();
        assert_eq!(del.action, Action::DeleteRelationships);
        assert_eq!(del.hash, None);
    }

    #[test]
    fn a_bad_object_id_or_attribute_costs_the_row() {
        let c = converter(Action::Identify);
        let (e, _) = c.convert(POS, row(&["a@b.io", "", "admin"])).unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("company_id"));
        let (e, _) = c
            .convert(POS, row(&["a@b.io", &"x".repeat(151), "admin"]))
            .unwrap_err();
        assert!(e.message().contains("151 bytes"), "{}", e.message());
        let (e, _) = c
            .convert(POS, row(&["a@b.io", "acme", &"r".repeat(1001)]))
            .unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("role"));
        let (e, _) = c.convert(POS, row(&["", "acme", "admin"])).unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("email"));
    }
}
