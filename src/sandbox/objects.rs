//! The sandbox's objects and relationships: an object identify merges attributes into the
//! object (by object type id and object id), a delete removes it with its relationships; a
//! person's `add_relationships` relates them to each listed object with the relationship's
//! attributes (merged), `delete_relationships` removes those relationships; deleting or
//! suppressing a person removes theirs. Every operation is checked against the Track API's
//! shape and limits first (object id at most 150 bytes, the object type id a string-formatted
//! integer from 1, attribute names at most 150 bytes, values at most 1000, at most 300
//! attributes and 100 KB of them per object or relationship) and refused with the 400/207
//! messages the API documents.
//!
//! `/__sandbox/objects` lists the objects, each with its people; `/__sandbox/people` shows
//! each person's relationships.

use super::api::State;
use super::people::{Change, Key, Person};
use crate::validate::{self, MAX_ATTRIBUTES, MAX_ID_BYTES, MAX_NAME_BYTES, MAX_VALUE_BYTES};
use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Most bytes of all the attributes of one object or relationship (their JSON text).
pub const MAX_OBJECT_ATTRIBUTE_BYTES: usize = 100_000;

/// An object's key: object type id and object id.
pub type ObjectKey = (String, String);

/// An object as `/__sandbox/objects` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Object {
    /// The object type id (`"1"`...).
    pub object_type_id: String,
    /// The object id.
    pub object_id: String,
    /// Merged attributes.
    pub attributes: Map<String, Value>,
    /// How many identify operations reached it.
    pub updates: u64,
    /// The people related to it, sorted, with the relationships' attributes.
    pub people: Vec<RelatedPerson>,
}

/// A person related to an object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RelatedPerson {
    /// The person's identifier kind.
    pub kind: String,
    /// The identifier value.
    pub identifier: String,
    /// The relationship's attributes.
    pub attributes: Map<String, Value>,
}

/// A person's relationship, as `/__sandbox/people` shows it on the person.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Relationship {
    /// The object type id.
    pub object_type_id: String,
    /// The object id.
    pub object_id: String,
    /// The relationship's attributes.
    pub attributes: Map<String, Value>,
}

/// One accepted object or relationship operation.
#[derive(Debug)]
pub enum ObjectChange {
    /// Create or update an object.
    Identify(ObjectKey, Map<String, Value>),
    /// Remove an object and its relationships.
    Delete(ObjectKey),
    /// Relate a person to objects, with the relationships' attributes.
    Relate(Key, Vec<(ObjectKey, Map<String, Value>)>),
    /// Remove a person's relationships to objects.
    Unrelate(Key, Vec<ObjectKey>),
}

impl ObjectChange {
    /// The name it is counted under in `/__sandbox/stats`' `by_action`.
    pub fn action(&self) -> &'static str {
        match self {
            ObjectChange::Identify(..) => "object_identify",
            ObjectChange::Delete(_) => "object_delete",
            ObjectChange::Relate(..) => "add_relationships",
            ObjectChange::Unrelate(..) => "delete_relationships",
        }
    }
}

/// The names of [`ObjectChange::action`], listed in the stats even at zero.
pub const ACTIONS: [&str; 4] = [
    "object_identify",
    "object_delete",
    "add_relationships",
    "delete_relationships",
];

#[derive(Debug, Default)]
struct ObjectEntry {
    attributes: Map<String, Value>,
    updates: u64,
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<ObjectKey, ObjectEntry>,
    /// (person, object) -> the relationship's attributes.
    relationships: BTreeMap<(Key, ObjectKey), Map<String, Value>>,
}

/// Every object and relationship.
#[derive(Debug, Default)]
pub struct Objects {
    inner: Mutex<Inner>,
}

impl Objects {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, c: ObjectChange) {
        let mut g = self.lock();
        match c {
            ObjectChange::Identify(key, attributes) => {
                let e = g.objects.entry(key).or_default();
                e.updates += 1;
                merge(&mut e.attributes, attributes);
            }
            ObjectChange::Delete(key) => {
                g.objects.remove(&key);
                g.relationships.retain(|(_, o), _| *o != key);
            }
            ObjectChange::Relate(person, list) => {
                for (object, attributes) in list {
                    let slot = g.relationships.entry((person.clone(), object)).or_default();
                    merge(slot, attributes);
                }
            }
            ObjectChange::Unrelate(person, list) => {
                for object in list {
                    g.relationships.remove(&(person.clone(), object));
                }
            }
        }
    }

    /// Removes a deleted or suppressed person's relationships.
    fn forget_person(&self, person: &Key) {
        let mut g = self.lock();
        if !g.relationships.is_empty() {
            g.relationships.retain(|(p, _), _| p != person);
        }
    }

    /// Every object, sorted, with its people.
    pub fn list(&self) -> Vec<Object> {
        let g = self.lock();
        g.objects
            .iter()
            .map(|((t, id), e)| Object {
                object_type_id: t.clone(),
                object_id: id.clone(),
                attributes: e.attributes.clone(),
                updates: e.updates,
                people: g
                    .relationships
                    .iter()
                    .filter(|((_, o), _)| o.0 == *t && o.1 == *id)
                    .map(|(((kind, identifier), _), a)| RelatedPerson {
                        kind: kind.clone(),
                        identifier: identifier.clone(),
                        attributes: a.clone(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// A person's relationships, sorted by object.
    pub fn of_person(&self, person: &Key) -> Vec<Relationship> {
        self.lock()
            .relationships
            .iter()
            .filter(|((p, _), _)| p == person)
            .map(|((_, (t, id)), a)| Relationship {
                object_type_id: t.clone(),
                object_id: id.clone(),
                attributes: a.clone(),
            })
            .collect()
    }

    /// Fills in the relationships of each person listed.
    pub fn annotate(&self, people: &mut [Person]) {
        if self.lock().relationships.is_empty() {
            return;
        }
        for p in people {
            p.relationships = self.of_person(&(p.kind.clone(), p.identifier.clone()));
        }
    }
}

/// `null` or `""` removes an attribute (as the spec says for objects and relationships);
/// anything else sets it.
fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        match &v {
            Value::Null => {
                into.remove(&k);
            }
            Value::String(s) if s.is_empty() => {
                into.remove(&k);
            }
            _ => {
                into.insert(k, v);
            }
        }
    }
}

/// Applies accepted changes in order: people's through `people` (in runs), objects' here;
/// a deleted or suppressed person loses their relationships.
pub(super) fn apply_in_order(
    s: &State,
    changes: Vec<Change>,
    people: impl Fn(&State, Vec<Change>),
) {
    let mut run = Vec::with_capacity(changes.len());
    for c in changes {
        match c {
            Change::Object(o) => {
                if !run.is_empty() {
                    people(s, std::mem::take(&mut run));
                }
                s.stats.accepted_named(o.action());
                let ignored = match &o {
                    ObjectChange::Relate(p, _) => s.people.is_suppressed(p),
                    _ => false,
                };
                if !ignored && s.cfg.store_people {
                    s.objects.apply(o);
                }
            }
            c => {
                if let Change::Delete(k) | Change::Suppress(k) = &c {
                    s.objects.forget_person(k);
                }
                run.push(c);
            }
        }
    }
    if !run.is_empty() {
        people(s, run);
    }
}

/// `/__sandbox/objects`: every object with its people.
pub(super) async fn list(AxState(s): AxState<Arc<State>>) -> Response {
    Json(s.objects.list()).into_response()
}

type Refusal = (String, String);

fn refuse(field: impl Into<String>, message: impl Into<String>) -> Refusal {
    (field.into(), message.into())
}

/// The `{"object_type_id":"1","object_id":"acme"}` of an object, checked.
fn object_key(ids: Option<&Value>, at: &str) -> Result<ObjectKey, Refusal> {
    let Some(ids) = ids.and_then(Value::as_object) else {
        return Err(refuse(at, "identifiers must be present"));
    };
    if ids.contains_key("cio_object_id") {
        return Err(refuse(
            format!("{at}.cio_object_id"),
            "cio_object_id is not supported by the sandbox: use object_type_id and object_id",
        ));
    }
    let type_id = match ids.get("object_type_id") {
        Some(Value::String(t)) => t,
        Some(_) => {
            return Err(refuse(
                format!("{at}.object_type_id"),
                "object_type_id must be a string",
            ))
        }
        None => {
            return Err(refuse(
                format!("{at}.object_type_id"),
                "object_type_id must be present",
            ))
        }
    };
    if !matches!(type_id.parse::<u64>(), Ok(n) if n >= 1 && n.to_string() == *type_id) {
        return Err(refuse(
            format!("{at}.object_type_id"),
            format!("object_type_id '{type_id}' must be a string-formatted integer from 1"),
        ));
    }
    let id = match ids.get("object_id") {
        Some(Value::String(id)) => id,
        Some(_) => {
            return Err(refuse(
                format!("{at}.object_id"),
                "object_id must be a string",
            ))
        }
        None => {
            return Err(refuse(
                format!("{at}.object_id"),
                "object_id must be present",
            ))
        }
    };
    if id.trim().is_empty() {
        return Err(refuse(
            format!("{at}.object_id"),
            "object_id cannot be an empty string",
        ));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(refuse(
            format!("{at}.object_id"),
            format!("object_id cannot be longer than {MAX_ID_BYTES} bytes"),
        ));
    }
    Ok((type_id.clone(), id.clone()))
}

/// Attributes of an object or a relationship: an object (or absent), the limits of each.
fn attributes(v: Option<&Value>, at: &str) -> Result<Map<String, Value>, Refusal> {
    let m = match v {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(refuse(at, format!("{at} must be an object"))),
    };
    if m.len() > MAX_ATTRIBUTES {
        return Err(refuse(
            at,
            format!("cannot identify more than {MAX_ATTRIBUTES} attributes in one request"),
        ));
    }
    for (k, v) in m {
        if k.len() > MAX_NAME_BYTES {
            return Err(refuse(
                k.clone(),
                format!("attribute name cannot be longer than {MAX_NAME_BYTES} bytes"),
            ));
        }
        if validate::value_bytes(v) > MAX_VALUE_BYTES {
            return Err(refuse(
                k.clone(),
                format!("value for attribute '{k}' cannot be longer than {MAX_VALUE_BYTES} bytes"),
            ));
        }
    }
    let total = serde_json::to_string(m).map(|t| t.len()).unwrap_or(0);
    if total > MAX_OBJECT_ATTRIBUTE_BYTES {
        return Err(refuse(
            at,
            format!("attributes cannot be larger than {MAX_OBJECT_ATTRIBUTE_BYTES} bytes in total"),
        ));
    }
    Ok(m.clone())
}

/// Checks an operation of `"type":"object"`.
/// An object id in `reject` (sandbox `--reject-id`) is refused like an invalid operation.
pub(super) fn check_object(op: &str, reject: &[String]) -> Result<ObjectChange, Refusal> {
    let v: Value = serde_json::from_str(op)
        .map_err(|e| refuse("", format!("operation must be a JSON object: {e}")))?;
    let key = object_key(v.get("identifiers"), "identifiers")?;
    if reject.contains(&key.1) {
        return Err(refuse(
            "identifiers.object_id",
            format!("object id '{}' is refused (sandbox --reject-id)", key.1),
        ));
    }
    match v.get("action").and_then(Value::as_str).unwrap_or("") {
        "identify" => {
            if v.get("cio_relationships").is_some() {
                return Err(refuse(
                    "cio_relationships",
                    "cio_relationships on an object identify is not supported by the sandbox yet",
                ));
            }
            Ok(ObjectChange::Identify(
                key,
                attributes(v.get("attributes"), "attributes")?,
            ))
        }
        "delete" => Ok(ObjectChange::Delete(key)),
        a @ ("identify_anonymous" | "add_relationships" | "delete_relationships") => Err(refuse(
            "action",
            format!("object action '{a}' is not supported by the sandbox yet"),
        )),
        "" => Err(refuse("action", "action must be present")),
        a => Err(refuse("action", format!("unknown object action '{a}'"))),
    }
}

/// Checks a person's `add_relationships` or `delete_relationships` (the person already
/// checked): `cio_relationships` must list at least one object.
pub(super) fn check_person_relationships(
    person: Key,
    action: &str,
    op: &str,
) -> Result<ObjectChange, Refusal> {
    let v: Value = serde_json::from_str(op)
        .map_err(|e| refuse("", format!("operation must be a JSON object: {e}")))?;
    let list = match v.get("cio_relationships") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            return Err(refuse(
                "cio_relationships",
                "cio_relationships cannot be empty",
            ))
        }
        Some(_) => {
            return Err(refuse(
                "cio_relationships",
                "cio_relationships must be an array",
            ))
        }
        None => {
            return Err(refuse(
                "cio_relationships",
                "cio_relationships must be present",
            ))
        }
    };
    let add = action == "add_relationships";
    let mut out = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let at = format!("cio_relationships[{i}]");
        let key = object_key(r.get("identifiers"), &format!("{at}.identifiers"))?;
        let attrs = attributes(
            r.get("relationship_attributes"),
            &format!("{at}.relationship_attributes"),
        )?;
        out.push((key, attrs));
    }
    Ok(if add {
        ObjectChange::Relate(person, out)
    } else {
        ObjectChange::Unrelate(person, out.into_iter().map(|(k, _)| k).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_operations_are_checked_as_documented() {
        let ok = r#"{"type":"object","identifiers":{"object_type_id":"1","object_id":"acme"},"action":"identify","attributes":{"name":"Acme"}}"#;
        assert!(matches!(
            check_object(ok, &[]),
            Ok(ObjectChange::Identify(..))
        ));
        let long = ok.replace("acme", &"a".repeat(151));
        assert_eq!(
            check_object(&long, &[]).unwrap_err().1,
            "object_id cannot be longer than 150 bytes"
        );
        let numeric = ok.replace(r#""object_type_id":"1""#, r#""object_type_id":1"#);
        assert!(check_object(&numeric, &[])
            .unwrap_err()
            .1
            .contains("string"));
        let value = ok.replace("\"Acme\"", &format!("\"{}\"", "v".repeat(1001)));
        assert!(check_object(&value, &[])
            .unwrap_err()
            .1
            .contains("1000 bytes"));
        let person = ("id".to_string(), "42".to_string());
        let none = r#"{"type":"person","identifiers":{"id":"42"},"action":"add_relationships","cio_relationships":[]}"#;
        assert!(check_person_relationships(person.clone(), "add_relationships", none).is_err());
        let one = r#"{"type":"person","identifiers":{"id":"42"},"action":"add_relationships","cio_relationships":[{"identifiers":{"object_type_id":"1","object_id":"acme"},"relationship_attributes":{"role":"admin"}}]}"#;
        assert!(matches!(
            check_person_relationships(person, "add_relationships", one),
            Ok(ObjectChange::Relate(_, l)) if l.len() == 1
        ));
    }
}
