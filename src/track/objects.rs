//! The wire form of objects and relationships (`--kind objects`, `--kind relationships`),
//! as the Track API's v2 schemas spell them:
//!
//! - `object_identify`: `{"type":"object","identifiers":{"object_type_id":"1","object_id":
//!   "acme"},"action":"identify","attributes":{..}}`;
//! - `object_delete`: the same without attributes, `"action":"delete"` (Customer.io also
//!   removes the object's relationships);
//! - `person_add_relationships` / `person_delete_relationships`: the person carries
//!   `cio_relationships`, a list of objects, each with its `relationship_attributes` (add only):
//!   `{"type":"person","identifiers":{"id":"42"},"action":"add_relationships",
//!   "cio_relationships":[{"identifiers":{"object_type_id":"1","object_id":"acme"},
//!   "relationship_attributes":{"role":"admin"}}]}`.
//!
//! The Track v1 API has no object path (its only form of relationships is the
//! `cio_relationships` member of a person's identify body, which would create a person who
//! does not exist): with `--api v1` each of these operations travels alone to
//! `POST /api/v2/entity` ([`ENTITY_PATH`]), whose body is the same operation.

use super::{write_json_str, Api, PayloadWriter};
use crate::operation::Action;
use crate::record::{Identifier, ObjectRef};
use serde_json::{Map, Value};

/// The v2 path of one operation (`--api v1` for objects and relationships).
pub const ENTITY_PATH: &str = "/api/v2/entity";

/// Appends `"object_type_id":"1","object_id":"acme"`.
fn write_object_identifiers(buf: &mut Vec<u8>, o: &ObjectRef) {
    buf.extend_from_slice(br#""object_type_id":"#);
    write_json_str(buf, &o.type_id);
    buf.extend_from_slice(br#","object_id":"#);
    write_json_str(buf, &o.id);
}

impl PayloadWriter {
    /// Starts an object's identify (schema `object_identify`); attributes follow as for a
    /// person. Always the v2 operation, whatever the API (see the module doc).
    pub fn begin_object(o: &ObjectRef, capacity: usize) -> PayloadWriter {
        let mut buf = Vec::with_capacity(capacity);
        buf.extend_from_slice(br#"{"type":"object","identifiers":{"#);
        write_object_identifiers(&mut buf, o);
        buf.extend_from_slice(br#"},"action":"identify","attributes":{"#);
        PayloadWriter {
            api: Api::Batch,
            buf,
            attributes: 0,
            update_key: false,
        }
    }
}

/// An object's delete (schema `object_delete`).
pub fn object_delete_payload(o: &ObjectRef) -> Vec<u8> {
    let mut buf = Vec::with_capacity(96 + o.id.len());
    buf.extend_from_slice(br#"{"type":"object","identifiers":{"#);
    write_object_identifiers(&mut buf, o);
    buf.extend_from_slice(br#"},"action":"delete"}"#);
    buf
}

/// A person's relationship to one object: `add_relationships` with the relationship's
/// attributes (left out when there are none), or `delete_relationships` (attributes never
/// sent).
pub fn relationship_payload(
    action: Action,
    person: &Identifier,
    o: &ObjectRef,
    attributes: &Map<String, Value>,
) -> Vec<u8> {
    let add = action == Action::AddRelationships;
    let mut buf = Vec::with_capacity(160 + person.value.len() + o.id.len());
    buf.extend_from_slice(br#"{"type":"person","identifiers":{"#);
    write_json_str(&mut buf, person.kind.as_str());
    buf.push(b':');
    write_json_str(&mut buf, &person.value);
    buf.extend_from_slice(if add {
        br#"},"action":"add_relationships","cio_relationships":[{"identifiers":{"#
    } else {
        br#"},"action":"delete_relationships","cio_relationships":[{"identifiers":{"#
    });
    write_object_identifiers(&mut buf, o);
    buf.push(b'}');
    if add && !attributes.is_empty() {
        buf.extend_from_slice(br#","relationship_attributes":"#);
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut buf, attributes);
    }
    buf.extend_from_slice(b"}]}");
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::IdKind;
    use serde_json::json;

    fn acme() -> ObjectRef {
        ObjectRef {
            type_id: "1".into(),
            id: "ac\"me".into(),
        }
    }

    #[test]
    fn object_operations_follow_the_schemas() {
        let mut w = PayloadWriter::begin_object(&acme(), 64);
        w.key("name");
        w.str_value("Acme");
        let v: Value = serde_json::from_slice(&w.finish()).unwrap();
        assert_eq!(
            v,
            json!({"type":"object","identifiers":{"object_type_id":"1","object_id":"ac\"me"},
                "action":"identify","attributes":{"name":"Acme"}})
        );
        let v: Value = serde_json::from_slice(&object_delete_payload(&acme())).unwrap();
        assert_eq!(
            v,
            json!({"type":"object","identifiers":{"object_type_id":"1","object_id":"ac\"me"},
                "action":"delete"})
        );
    }

    #[test]
    fn the_person_carries_cio_relationships() {
        let p = Identifier {
            kind: IdKind::Email,
            value: "a@b.io".into(),
        };
        let mut attrs = Map::new();
        attrs.insert("role".into(), json!("admin"));
        let v: Value = serde_json::from_slice(&relationship_payload(
            Action::AddRelationships,
            &p,
            &acme(),
            &attrs,
        ))
        .unwrap();
        assert_eq!(
            v,
            json!({"type":"person","identifiers":{"email":"a@b.io"},"action":"add_relationships",
                "cio_relationships":[{"identifiers":{"object_type_id":"1","object_id":"ac\"me"},
                "relationship_attributes":{"role":"admin"}}]})
        );
        let v: Value = serde_json::from_slice(&relationship_payload(
            Action::DeleteRelationships,
            &p,
            &acme(),
            &attrs,
        ))
        .unwrap();
        assert_eq!(
            v,
            json!({"type":"person","identifiers":{"email":"a@b.io"},"action":"delete_relationships",
                "cio_relationships":[{"identifiers":{"object_type_id":"1","object_id":"ac\"me"}}]})
        );
    }
}
