//! The sandbox's people: identify merges attributes, `_update` never creates, events are kept
//! per person and deduplicated by id, delete removes, suppress removes and keeps the
//! identifier out until unsuppressed. Devices are kept per person (a token is one device: added
//! to someone, it leaves anyone else); a merge moves the secondary's attributes the primary
//! lacks (unset or empty), devices and events to the primary and removes the secondary.

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
    /// Their push devices, in the order added (left out of the JSON when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// Their relationships to objects (left out of the JSON when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relationships: Vec<super::objects::Relationship>,
}

/// A push device as the sandbox holds it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Device {
    /// The device token.
    pub token: String,
    /// `ios` or `android`.
    pub platform: String,
    /// When it was last used, Unix seconds, when given.
    #[serde(default)]
    pub last_used: Option<i64>,
    /// Its attributes (strings).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
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
    /// When each attribute was last set (Unix seconds: the update's `_timestamp`, or the
    /// time it arrived), as the App API's `timestamps` gives them.
    stamps: HashMap<String, i64>,
    /// The latest update's time: an identify whose `_timestamp` is older is dropped.
    latest: i64,
    devices: Vec<Device>,
}

/// Now, in Unix seconds.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(Debug, Default)]
struct Inner {
    people: HashMap<Key, Entry>,
    /// Every event id received, workspace-wide; kept when a person is deleted.
    event_ids: HashSet<String>,
    suppressed: HashSet<Key>,
    /// Who holds each device token (a token is one device).
    device_owner: HashMap<String, Key>,
}

impl Inner {
    /// Removes a person and forgets who held their devices.
    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let e = self.people.remove(key)?;
        for d in &e.devices {
            if self.device_owner.get(&d.token) == Some(key) {
                self.device_owner.remove(&d.token);
            }
        }
        Some(e)
    }
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
    /// Add or update a device (the person is created if new, as Customer.io does for an
    /// operation on someone unknown); its token leaves anyone else.
    AddDevice {
        /// Kind and value.
        key: Key,
        /// The device.
        device: Device,
    },
    /// Remove a person's device (nothing happens when they do not have it).
    DeleteDevice {
        /// Kind and value.
        key: Key,
        /// The token.
        token: String,
    },
    /// Merge `secondary` into `primary`. When either does not exist nothing happens (the
    /// API docs: without the primary "your request won't do anything"; for a missing
    /// secondary they say nothing, and the sandbox does nothing either).
    Merge {
        /// The person who remains.
        primary: Key,
        /// The person merged in and removed.
        secondary: Key,
    },
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
    /// Identify operations whose `_timestamp` is older than the person's latest update:
    /// accepted (200), dropped, as Customer.io does.
    pub stale_dropped: u64,
    /// Merges accepted whose primary or secondary did not exist: nothing was changed.
    pub ignored_merges: u64,
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
                    // So is `_timestamp`: the update's time, never stored as an attribute.
                    let stamp = attributes.remove("_timestamp").and_then(|v| match v {
                        Value::String(s) => s.trim().parse().ok(),
                        v => v.as_i64(),
                    });
                    if m.suppressed.contains(&key) {
                        done.ignored_suppressed += 1;
                        continue;
                    }
                    if update_only && !m.people.contains_key(&key) {
                        continue;
                    }
                    let at = stamp.unwrap_or_else(unix_now);
                    if let (Some(t), Some(e)) = (stamp, m.people.get(&key)) {
                        if t < e.latest {
                            done.stale_dropped += 1;
                            continue;
                        }
                    }
                    let entry = m.people.entry(key).or_default();
                    entry.updates += 1;
                    entry.latest = entry.latest.max(at);
                    for (k, v) in attributes {
                        entry.stamps.insert(k.clone(), at);
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
                    m.remove(&key);
                }
                Change::Suppress(key) => {
                    m.remove(&key);
                    m.suppressed.insert(key);
                }
                Change::Unsuppress(key) => {
                    m.suppressed.remove(&key);
                }
                Change::AddDevice { key, device } => {
                    if m.suppressed.contains(&key) {
                        done.ignored_suppressed += 1;
                        continue;
                    }
                    if let Some(owner) = m.device_owner.remove(&device.token) {
                        if let Some(e) = m.people.get_mut(&owner) {
                            e.devices.retain(|d| d.token != device.token);
                        }
                    }
                    m.device_owner.insert(device.token.clone(), key.clone());
                    m.people.entry(key).or_default().devices.push(device);
                }
                Change::DeleteDevice { key, token } => {
                    if let Some(e) = m.people.get_mut(&key) {
                        e.devices.retain(|d| d.token != token);
                    }
                    if m.device_owner.get(&token) == Some(&key) {
                        m.device_owner.remove(&token);
                    }
                }
                Change::Merge { primary, secondary } => {
                    if primary == secondary
                        || !m.people.contains_key(&primary)
                        || !m.people.contains_key(&secondary)
                    {
                        done.ignored_merges += 1;
                        continue;
                    }
                    let Some(sec) = m.people.remove(&secondary) else {
                        continue;
                    };
                    for d in &sec.devices {
                        m.device_owner.insert(d.token.clone(), primary.clone());
                    }
                    let Some(pri) = m.people.get_mut(&primary) else {
                        continue;
                    };
                    // The primary keeps its values; the secondary fills only what the primary
                    // has not set, or has empty.
                    for (k, v) in sec.attributes {
                        let empty = match pri.attributes.get(&k) {
                            None | Some(Value::Null) => true,
                            Some(Value::String(s)) => s.is_empty(),
                            Some(_) => false,
                        };
                        if empty {
                            pri.attributes.insert(k, v);
                        }
                    }
                    for d in sec.devices {
                        if !pri.devices.iter().any(|x| x.token == d.token) {
                            pri.devices.push(d);
                        }
                    }
                    pri.events.extend(sec.events);
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
            devices: e.devices.clone(),
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

    /// What the App API reads back of one person: their attributes and when each was set.
    pub fn read_back(&self, key: &Key) -> Option<(Map<String, Value>, HashMap<String, i64>)> {
        self.lock()
            .people
            .get(key)
            .map(|e| (e.attributes.clone(), e.stamps.clone()))
    }

    /// Sets attributes of an existing person "in the workspace" (as someone editing them in
    /// Customer.io would), stamped now; `false` when nobody holds `key`.
    pub fn change_in_workspace(&self, key: &Key, attributes: Map<String, Value>) -> bool {
        let mut g = self.lock();
        let Some(e) = g.people.get_mut(key) else {
            return false;
        };
        let now = unix_now();
        e.latest = e.latest.max(now);
        for (k, v) in attributes {
            e.stamps.insert(k.clone(), now);
            e.attributes.insert(k, v);
        }
        true
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

    fn device(token: &str) -> Device {
        Device {
            token: token.into(),
            platform: "ios".into(),
            last_used: None,
            attributes: Map::new(),
        }
    }

    /// The primary keeps its values and gains what it lacks (unset or empty), the
    /// secondary's devices and events; the secondary is gone. A merge with a missing side
    /// changes nothing.
    #[test]
    fn a_merge_fills_the_primary_and_removes_the_secondary() {
        let p = People::new(true);
        identify(&p, "1", json!({"name": "Ann", "city": ""}));
        identify(
            &p,
            "2",
            json!({"name": "Anne", "city": "Oslo", "plan": "pro"}),
        );
        p.apply(vec![
            Change::AddDevice {
                key: key("2"),
                device: device("t2"),
            },
            event(None, "e1"),
        ]);
        let merge = |a: &str, b: &str| Change::Merge {
            primary: key(a),
            secondary: key(b),
        };
        assert_eq!(p.apply(vec![merge("1", "9")]).ignored_merges, 1);
        assert_eq!(p.apply(vec![merge("9", "1")]).ignored_merges, 1);
        p.apply(vec![merge("1", "2")]);
        assert_eq!(
            held(&p, "1"),
            Some(json!({"name": "Ann", "city": "Oslo", "plan": "pro"}))
        );
        assert_eq!(held(&p, "2"), None);
        let one = p.get(&key("1")).unwrap();
        assert_eq!(one.devices, vec![device("t2")]);
        assert_eq!(one.events.len(), 1);
        // A token is one device: added to someone else, it moves.
        p.apply(vec![Change::AddDevice {
            key: key("3"),
            device: device("t2"),
        }]);
        assert!(p.get(&key("1")).unwrap().devices.is_empty());
        p.apply(vec![Change::DeleteDevice {
            key: key("3"),
            token: "t2".into(),
        }]);
        assert!(p.get(&key("3")).unwrap().devices.is_empty());
    }
}
