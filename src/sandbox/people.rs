//! The sandbox's people: identify merges attributes, delete removes, `_update` never creates.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// A person as the sandbox holds them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Person {
    /// `id`, `email` or `cio_id`.
    pub kind: String,
    /// The identifier value (a `cio_id` without prefix).
    pub identifier: String,
    /// Merged attributes.
    pub attributes: Map<String, Value>,
    /// How many identify calls reached this person.
    pub updates: u64,
}

/// A person's key: identifier kind and value.
type Key = (String, String);

/// What is kept per person: merged attributes and the number of identify calls.
type Entry = (Map<String, Value>, u64);

/// All people, keyed by identifier kind and value.
#[derive(Debug, Default)]
pub struct People {
    keep: bool,
    map: Mutex<HashMap<Key, Entry>>,
}

/// One change to apply.
pub enum Change {
    /// Merge attributes (create unless update-only).
    Identify {
        /// Kind and value.
        key: (String, String),
        /// Attributes to merge.
        attributes: Map<String, Value>,
    },
    /// Remove the person.
    Delete((String, String)),
}

impl People {
    /// A store; `keep = false` applies nothing (for huge benchmarks).
    pub fn new(keep: bool) -> People {
        People {
            keep,
            map: Mutex::default(),
        }
    }

    /// Applies changes under one lock.
    pub fn apply(&self, changes: Vec<Change>) {
        if !self.keep {
            return;
        }
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for c in changes {
            match c {
                Change::Identify {
                    key,
                    mut attributes,
                } => {
                    // `_update` is an instruction, never an attribute, whatever its value.
                    let update_only = attributes.remove("_update") == Some(Value::Bool(true));
                    if update_only && !m.contains_key(&key) {
                        continue;
                    }
                    let entry = m.entry(key).or_default();
                    entry.1 += 1;
                    for (k, v) in attributes {
                        entry.0.insert(k, v);
                    }
                }
                Change::Delete(key) => {
                    m.remove(&key);
                }
            }
        }
    }

    /// Everyone, sorted.
    pub fn list(&self) -> Vec<Person> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Person> = m
            .iter()
            .map(|((kind, id), (attrs, n))| Person {
                kind: kind.clone(),
                identifier: id.clone(),
                attributes: attrs.clone(),
                updates: *n,
            })
            .collect();
        v.sort_by(|a, b| (&a.kind, &a.identifier).cmp(&(&b.kind, &b.identifier)));
        v
    }

    /// Writes everyone as JSONL, owner-only.
    pub fn save(&self, path: &Path) -> std::io::Result<usize> {
        let list = self.list();
        let f = crate::report::create_private(path)?;
        let mut w = std::io::BufWriter::new(f);
        for p in &list {
            serde_json::to_writer(&mut w, p)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        Ok(list.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identify(p: &People, id: &str, attrs: Value) {
        let attributes = attrs.as_object().cloned().unwrap_or_default();
        p.apply(vec![Change::Identify {
            key: ("id".into(), id.into()),
            attributes,
        }]);
    }

    fn held(p: &People, id: &str) -> Option<Value> {
        p.list()
            .into_iter()
            .find(|x| x.identifier == id)
            .map(|x| Value::Object(x.attributes))
    }

    /// TRACK_API.md: identify creates or merges; `_update: true` never creates and changes
    /// nothing when no one matches; `""` is stored as sent (the "nullify" of a CSV upload);
    /// `_update` is never stored, whatever its value.
    #[test]
    fn identify_merges_update_only_never_creates_and_update_is_never_stored() {
        let p = People::new(true);
        identify(&p, "1", json!({"a": "x", "b": "y"}));
        identify(&p, "1", json!({"b": "z", "c": 3}));
        assert_eq!(held(&p, "1"), Some(json!({"a": "x", "b": "z", "c": 3})));
        identify(&p, "2", json!({"a": "x", "_update": true}));
        assert_eq!(held(&p, "2"), None, "update-only created someone");
        identify(&p, "1", json!({"a": "", "_update": true}));
        assert_eq!(held(&p, "1"), Some(json!({"a": "", "b": "z", "c": 3})));
        identify(&p, "3", json!({"a": "x", "_update": false}));
        assert_eq!(held(&p, "3"), Some(json!({"a": "x"})));
        p.apply(vec![Change::Delete(("id".into(), "1".into()))]);
        assert_eq!(held(&p, "1"), None);
    }
}
