//! The sandbox's people: identify merges attributes, `_update` never creates, events are kept
//! per person and deduplicated by id, delete removes, suppress removes and keeps the
//! identifier out until unsuppressed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// A person as the sandbox holds them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Person {
    /// `id`, `email`, `cio_id` or `phone`.
    pub kind: String,
    /// The identifier value (a `cio_id` without prefix).
    pub identifier: String,
    /// Merged attributes.
    pub attributes: Map<String, Value>,
    /// How many identify calls reached this person.
    pub updates: u64,
    /// Their events in arrival order (left out of the JSON when there are none, so a
    /// people-only dump reads as it always did).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    /// Their relationships to objects (left out of the JSON when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relationships: Vec<super::objects::Relationship>,
}

/// An event as the sandbox holds it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Its id (a ULID, upper case), when it came with one.
    #[serde(default)]
    pub id: Option<String>,
    /// The name, trimmed as Customer.io trims it.
    pub name: String,
    /// When it happened, Unix seconds, when given.
    #[serde(default)]
    pub timestamp: Option<i64>,
    /// Its data (`data` in v1, `attributes` in v2).
    #[serde(default)]
    pub data: Map<String, Value>,
}

/// An event with the person it belongs to, as `/__sandbox/events` lists them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PersonEvent {
    /// The person's identifier kind.
    pub kind: String,
    /// The person's identifier value.
    pub identifier: String,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// An identifier on the suppression list.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Suppressed {
    /// The identifier kind.
    pub kind: String,
    /// The identifier value.
    pub identifier: String,
}

/// A person's key: identifier kind and value.
pub type Key = (String, String);

/// What is kept per person.
#[derive(Debug, Default)]
struct Entry {
    attributes: Map<String, Value>,
    updates: u64,
    events: Vec<Event>,
}

#[derive(Debug, Default)]
struct Inner {
    people: HashMap<Key, Entry>,
    /// Every event id received, workspace-wide; kept when a person is deleted.
    event_ids: HashSet<String>,
    suppressed: HashSet<Key>,
}

/// All people, keyed by identifier kind and value.
#[derive(Debug, Default)]
pub struct People {
    keep: bool,
    inner: Mutex<Inner>,
}

/// One change to apply.
pub enum Change {
    /// Merge attributes (create unless update-only).
    Identify {
        /// Kind and value.
        key: Key,
        /// Attributes to merge.
        attributes: Map<String, Value>,
    },
    /// Record an event (the person is created if new).
    Event {
        /// Kind and value.
        key: Key,
        /// The event.
        event: Event,
    },
    /// Remove the person and their events.
    Delete(Key),
    /// Remove the person and ignore their identifier until unsuppressed.
    Suppress(Key),
    /// Take the identifier off the suppression list (recreates nobody).
    Unsuppress(Key),
    /// An object or relationship operation, applied by [`super::objects`].
    Object(super::objects::ObjectChange),
}

/// What applying changes did besides applying them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Events whose id had been received before: accepted, not stored again.
    pub duplicate_events: u64,
    /// Identify and event operations for a suppressed identifier: accepted, ignored.
    pub ignored_suppressed: u64,
}

impl People {
    /// A store; `keep = false` applies nothing (for huge benchmarks).
    pub fn new(keep: bool) -> People {
        People {
            keep,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies changes under one lock, in order.
    pub fn apply(&self, changes: Vec<Change>) -> Applied {
        let mut done = Applied::default();
        if !self.keep {
            return done;
        }
        let mut g = self.lock();
        let m = &mut *g;
        for c in changes {
            match c {
                Change::Identify {
                    key,
                    mut attributes,
                } => {
                    // `_update` is an instruction, never an attribute, whatever its value.
                    let update_only = attributes.remove("_update") == Some(Value::Bool(true));
                    if m.suppressed.contains(&key) {
                        done.ignored_suppressed += 1;
                        continue;
                    }
                    if update_only && !m.people.contains_key(&key) {
                        continue;
                    }
                    let entry = m.people.entry(key).or_default();
                    entry.updates += 1;
                    for (k, v) in attributes {
                        entry.attributes.insert(k, v);
                    }
                }
                Change::Event { key, event } => {
                    if m.suppressed.contains(&key) {
                        done.ignored_suppressed += 1;
                        continue;
                    }
                    if let Some(id) = &event.id {
                        if !m.event_ids.insert(id.clone()) {
                            done.duplicate_events += 1;
                            continue;
                        }
                    }
                    m.people.entry(key).or_default().events.push(event);
                }
                Change::Delete(key) => {
                    m.people.remove(&key);
                }
                Change::Suppress(key) => {
                    m.people.remove(&key);
                    m.suppressed.insert(key);
                }
                Change::Unsuppress(key) => {
                    m.suppressed.remove(&key);
                }
                Change::Object(_) => {}
            }
        }
        done
    }

    fn person((kind, id): &Key, e: &Entry) -> Person {
        Person {
            kind: kind.clone(),
            identifier: id.clone(),
            attributes: e.attributes.clone(),
            updates: e.updates,
            events: e.events.clone(),
            relationships: Vec::new(),
        }
    }

    /// Everyone, sorted.
    pub fn list(&self) -> Vec<Person> {
        let g = self.lock();
        let mut v: Vec<Person> = g.people.iter().map(|(k, e)| Self::person(k, e)).collect();
        v.sort_by(|a, b| (&a.kind, &a.identifier).cmp(&(&b.kind, &b.identifier)));
        v
    }

    /// One person, if they exist.
    pub fn get(&self, key: &Key) -> Option<Person> {
        self.lock().people.get(key).map(|e| Self::person(key, e))
    }

    /// Whether an identifier is on the suppression list.
    pub fn is_suppressed(&self, key: &Key) -> bool {
        self.lock().suppressed.contains(key)
    }

    /// Every stored event, by person (sorted) and then in arrival order.
    pub fn events(&self) -> Vec<PersonEvent> {
        self.list()
            .into_iter()
            .flat_map(|p| {
                let (kind, identifier) = (p.kind, p.identifier);
                p.events.into_iter().map(move |event| PersonEvent {
                    kind: kind.clone(),
                    identifier: identifier.clone(),
                    event,
                })
            })
            .collect()
    }

    /// The suppression list, sorted.
    pub fn suppressed(&self) -> Vec<Suppressed> {
        let mut v: Vec<Suppressed> = self
            .lock()
            .suppressed
            .iter()
            .map(|(kind, identifier)| Suppressed {
                kind: kind.clone(),
                identifier: identifier.clone(),
            })
            .collect();
        v.sort();
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

    fn key(id: &str) -> Key {
        ("id".into(), id.into())
    }

    fn event(id: Option<&str>, name: &str) -> Change {
        Change::Event {
            key: key("1"),
            event: Event {
                id: id.map(String::from),
                name: name.into(),
                timestamp: Some(1),
                data: Map::new(),
            },
        }
    }

    /// An id seen once is never stored again, for anyone, even after the person is gone;
    /// events without an id are all kept.
    #[test]
    fn events_are_deduplicated_by_id_workspace_wide() {
        let p = People::new(true);
        let a = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
        let done = p.apply(vec![
            event(Some(a), "x"),
            event(Some(a), "x"),
            event(None, "y"),
            event(None, "y"),
        ]);
        assert_eq!(done.duplicate_events, 1);
        let names: Vec<String> = p.events().into_iter().map(|e| e.event.name).collect();
        assert_eq!(names, ["x", "y", "y"]);
        assert_eq!(
            p.get(&key("1")).unwrap().updates,
            0,
            "an event is no identify"
        );
        p.apply(vec![Change::Delete(key("1"))]);
        assert!(p.events().is_empty());
        assert_eq!(p.apply(vec![event(Some(a), "x")]).duplicate_events, 1);
        assert!(p.list().is_empty());
    }

    /// Suppress removes the person and ignores their identifier until unsuppressed, which
    /// recreates nobody.
    #[test]
    fn suppress_removes_and_ignores_until_unsuppressed() {
        let p = People::new(true);
        identify(&p, "1", json!({"a": 1}));
        p.apply(vec![Change::Suppress(key("1"))]);
        assert!(p.list().is_empty());
        assert!(p.is_suppressed(&key("1")));
        let done = p.apply(vec![
            Change::Identify {
                key: key("1"),
                attributes: Map::new(),
            },
            event(None, "x"),
        ]);
        assert_eq!(done.ignored_suppressed, 2);
        assert!(p.list().is_empty());
        assert_eq!(p.suppressed().len(), 1);
        p.apply(vec![Change::Unsuppress(key("1"))]);
        assert!(p.list().is_empty() && p.suppressed().is_empty());
        identify(&p, "1", json!({"b": 2}));
        assert_eq!(held(&p, "1"), Some(json!({"b": 2})), "a new profile");
    }
}
