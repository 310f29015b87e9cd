//! A real preview: `--dry-run` with `--state` (and `sync --dry-run`) reads the input once,
//! compares every person with what the ledger knows for this workspace, and shows the diff —
//! new, changed (with the names of the attributes that changed), unchanged, and with
//! `--mirror` the people to be removed — without sending anything or recording a run: the
//! state file is opened read-only. The same pass serves the guards of [`crate::guard`]
//! (`--min-rows`, `--max-change`) before a real run, and the mirror's confirmation.
//!
//! The ledger keeps, next to each person's 16-byte hash, their per-attribute hashes
//! ([`AttrHashes`]: 8 bytes an attribute, the name's hash and the value's), written when an
//! acknowledgement is recorded. Attribute names are not kept: a changed attribute is named
//! from tonight's row; an attribute the ledger knew that tonight's row no longer sends is
//! counted (`dropped`), not named. People acknowledged before this version have no
//! per-attribute hashes: they are shown as changed with their attributes unknown.

use crate::config::ImportConfig;
use crate::ledger::Destination;
use crate::mirror::{self, Seen};
use crate::operation::Action;
use crate::record::Identifier;
use crate::seen::SeenFilter;
use crate::source::Item;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;
use std::path::Path;

/// How many identifiers each group names.
pub const FIRST: usize = crate::confirm::FIRST;

/// Per-attribute hashes: for each attribute (sorted by the name's hash), 4 bytes of the
/// name's hash and 4 of its canonical value's, little-endian.
pub struct AttrHashes;

impl AttrHashes {
    /// The blob of `(name, canonical value bytes)` pairs.
    pub fn of<'a>(pairs: impl Iterator<Item = (&'a str, &'a [u8])>) -> Box<[u8]> {
        let mut v: Vec<(u32, u32)> = pairs
            .map(|(n, value)| (name_hash(n), xxhash_rust::xxh3::xxh3_64(value) as u32))
            .collect();
        v.sort_unstable();
        let mut out = Vec::with_capacity(v.len() * 8);
        for (n, h) in v {
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&h.to_le_bytes());
        }
        out.into_boxed_slice()
    }

    /// The pairs of a blob (a torn tail is ignored).
    pub fn parse(blob: &[u8]) -> Vec<(u32, u32)> {
        blob.chunks_exact(8)
            .map(|c| {
                let n = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                let h = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
                (n, h)
            })
            .collect()
    }
}

/// The 4-byte hash of an attribute name.
pub fn name_hash(name: &str) -> u32 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes()) as u32
}

/// Why a preview could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The input cannot be opened or read to its end.
    #[error("{0}")]
    Input(String),
    /// The state file cannot be read.
    #[error("state file {path}: {message}")]
    Ledger {
        /// The state file.
        path: String,
        /// What failed.
        message: String,
    },
    /// Ctrl-C or SIGTERM while the input was read.
    #[error("interrupted while reading the input for the preview (nothing was sent)")]
    Interrupted,
}

/// Rows between two checks for Ctrl-C or SIGTERM.
const STOP_CHECK_ROWS: u64 = 4096;

/// A group of people: how many, and the first few.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Group {
    /// How many.
    pub count: u64,
    /// The first [`FIRST`], in file order (for removals: identifier order).
    pub first: Vec<String>,
}

impl Group {
    fn add(&mut self, id: &str) {
        self.count += 1;
        if self.first.len() < FIRST {
            self.first.push(id.to_string());
        }
    }
}

/// A changed person and what changed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChangedPerson {
    /// The identifier.
    pub id: String,
    /// The attributes whose values differ or that are new (`None`: the ledger has no
    /// per-attribute hashes for this person, recorded by an older version).
    pub attributes: Option<Vec<String>>,
    /// Attributes the ledger knew that tonight's row no longer sends (not named: names are not
    /// kept).
    pub dropped: u64,
}

/// The changed people: how many, and the first few with their attributes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Changed {
    /// How many.
    pub count: u64,
    /// The first [`FIRST`], in file order.
    pub first: Vec<ChangedPerson>,
}

/// What a run would do, person by person.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Diff {
    /// The input.
    pub input: String,
    /// The workspace compared against (`site SITE at HOST`).
    pub destination: String,
    /// Rows read.
    pub rows: u64,
    /// Rows that would fail validation (never sent).
    pub invalid: u64,
    /// People (or events) the ledger does not know.
    pub new: Group,
    /// People whose values differ from the acknowledged ones.
    pub changed: Changed,
    /// People (or events) acknowledged unchanged: they would be skipped.
    pub unchanged: Group,
    /// People the ledger knows for this workspace by the export's identifier kind.
    pub known: u64,
    /// Of them, named by no row.
    pub absent: u64,
    /// With `--mirror`: the people it would remove (the absent), and how.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_remove: Option<Group>,
    /// With `--mirror`: what it would do (`delete`, `suppress`, `clear:ATTRIBUTE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// People known by another identifier kind (never removed, not counted as known).
    pub other_kinds: u64,
    /// This input's feed ([`crate::feed`]): `known` and `absent` count its people only.
    pub feed: String,
    /// People of other feeds, or recorded before feeds (never removed, not counted as known).
    pub other_feeds: u64,
    /// Rows whose identifier cannot be read (with `--mirror`, they hold every removal back).
    pub unidentified: u64,
    /// No site id was given (a dry run needs no credentials): no workspace's ledger is read.
    #[serde(skip)]
    pub no_site_id: bool,
}

/// Opens the ledger at `path` read-only and finds `dest` in it: `None` when the file does not
/// exist or has never seen this workspace (then everyone is new).
fn open_read_only(path: &Path, dest: &Destination) -> Result<Option<(Connection, i64)>, String> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| e.to_string())?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let has_attrs: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('people') WHERE name IN ('dest', 'attrs')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    if has_attrs == 0 {
        // Written before acknowledgements were tied to a workspace: nothing is trusted.
        return Ok(None);
    }
    let id = crate::ledger::destination_id(&conn, dest).map_err(|e| e.to_string())?;
    Ok(id.map(|id| (conn, id)))
}

/// What the ledger holds of one person: hash and per-attribute hashes.
type Known = (Vec<u8>, Option<Vec<u8>>);

fn known_of(conn: &Connection, dest: i64, id: &Identifier) -> rusqlite::Result<Option<Known>> {
    let has_attrs = conn
        .prepare_cached("SELECT attrs FROM people LIMIT 0")
        .is_ok();
    let sql = if has_attrs {
        "SELECT hash, attrs FROM people WHERE dest = ?1 AND kind = ?2 AND identifier = ?3"
    } else {
        "SELECT hash, NULL FROM people WHERE dest = ?1 AND kind = ?2 AND identifier = ?3"
    };
    conn.prepare_cached(sql)?
        .query_row(params![dest, id.kind.as_str(), id.value], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
}

fn event_known(conn: &Connection, dest: i64, event_id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM events WHERE dest = ?1 AND event_id = ?2")?
        .exists(params![dest, event_id])
}

/// The attribute names of a payload (a v1 body, or a v2 operation's `attributes`) whose
/// hashes are in `now`: what tonight's row sends.
fn payload_names(payload: &[u8]) -> Vec<String> {
    let Ok(serde_json::Value::Object(mut v)) = serde_json::from_slice(payload) else {
        return Vec::new();
    };
    let attrs = match v.remove("attributes") {
        Some(serde_json::Value::Object(a)) => a,
        _ => v,
    };
    attrs.into_iter().map(|(k, _)| k).collect()
}

/// Which attributes changed between the ledger's blob and tonight's.
fn changed_attributes(before: &[u8], now: &[u8], payload: &[u8]) -> (Vec<String>, u64) {
    let before = AttrHashes::parse(before);
    let now = AttrHashes::parse(now);
    let find =
        |set: &[(u32, u32)], n: u32| set.binary_search_by_key(&n, |p| p.0).ok().map(|i| set[i].1);
    let mut names: Vec<String> = payload_names(payload)
        .into_iter()
        .filter(|name| {
            let n = name_hash(name);
            match find(&now, n) {
                Some(h) => find(&before, n) != Some(h),
                None => false,
            }
        })
        .collect();
    names.sort();
    let dropped = before
        .iter()
        .filter(|(n, _)| find(&now, *n).is_none())
        .count() as u64;
    (names, dropped)
}

/// Reads the whole input once and compares it with the ledger of `cfg.state` for this run's
/// workspace (read-only: neither the ledger nor its run history changes).
///
/// People with several rows in a regular file are compared as the run compares them
/// ([`crate::groups`]): the chain of their rows' hashes against the ledger's, so that the
/// preview's new, changed and unchanged people are those the run sends or skips. `stop` is
/// checked every few thousand rows (Ctrl-C, SIGTERM): then [`PreviewError::Interrupted`].
pub fn diff(cfg: &ImportConfig, stop: &crate::stop::Stop) -> Result<Diff, PreviewError> {
    let state = cfg.state.as_deref().unwrap_or(Path::new(""));
    let ledger_err = |message: String| PreviewError::Ledger {
        path: state.display().to_string(),
        message,
    };
    let site_id = cfg
        .credentials
        .as_ref()
        .map(|c| c.site_id.as_str())
        .unwrap_or("");
    let dest = Destination::new(site_id, &cfg.endpoint);
    let ledger = open_read_only(state, &dest).map_err(ledger_err)?;
    let (rows, converter) = crate::convert::prepass(cfg).map_err(PreviewError::Input)?;
    let mut d = Diff {
        input: cfg.input.display(),
        destination: dest.to_string(),
        mirror: cfg.nightly.mirror.as_ref().map(|m| m.mode.name()),
        feed: crate::feed::of(cfg.nightly.feed.as_deref(), &cfg.input),
        no_site_id: site_id.is_empty(),
        ..Diff::default()
    };
    // Who has several rows, and their chain: only for what the run groups (identify rows
    // of a file that can be read twice), only when there is a ledger to compare with.
    let groups = if ledger.is_some()
        && cfg.convert.event.is_none()
        && cfg.convert.action == Action::Identify
        && cfg.input.rereadable()
    {
        crate::groups::prepass(cfg, stop).map_err(|_| PreviewError::Interrupted)?
    } else {
        None
    };
    let mut seen = Seen::default();
    let mut people = SeenFilter::new();
    let q = |e: rusqlite::Error| ledger_err(e.to_string());
    for item in rows {
        let item = item.map_err(|e| PreviewError::Input(e.to_string()))?;
        d.rows += 1;
        if d.rows.is_multiple_of(STOP_CHECK_ROWS) && stop.reading_should_stop() {
            return Err(PreviewError::Interrupted);
        }
        let (pos, raw) = match item {
            Item::Bad { .. } => {
                d.invalid += 1;
                seen.saw(None);
                continue;
            }
            Item::Row { pos, raw } => (pos, raw),
        };
        let op = match converter.convert(pos, raw) {
            Ok(op) => op,
            Err((inv, _)) => {
                d.invalid += 1;
                seen.saw(inv.identifier.as_deref());
                continue;
            }
        };
        seen.saw(Some(&op.identifier.value));
        // A person (or event) on several rows is counted once, by its first row.
        let key = op.key().seen_hash();
        if people.may_contain(key) {
            continue;
        }
        people.insert(key);
        let shown = op
            .event_id
            .as_deref()
            .map(str::to_string)
            .unwrap_or_else(|| op.identifier.v1_path_value());
        let Some((conn, dest_id)) = &ledger else {
            d.new.add(&shown);
            continue;
        };
        if let Some(event_id) = op.event_id.as_deref() {
            if event_known(conn, *dest_id, event_id).map_err(q)? {
                d.unchanged.add(&shown);
            } else {
                d.new.add(&shown);
            }
            continue;
        }
        if op.action != Action::Identify {
            continue;
        }
        // What the run compares with the ledger: the chain of a person's rows when they
        // have several, else the row's hash (`--full` sends everyone).
        let compared = match groups.as_ref().and_then(|g| g.get(key)) {
            Some(g) => Some(g.chain),
            None => op.hash,
        };
        match known_of(conn, *dest_id, &op.identifier).map_err(q)? {
            None => d.new.add(&shown),
            Some((hash, _)) if !cfg.full && compared.is_some_and(|h| h[..] == hash[..]) => {
                d.unchanged.add(&shown)
            }
            Some((_, before)) => {
                d.changed.count += 1;
                if d.changed.first.len() < FIRST {
                    let (attributes, dropped) = match (before, &op.attrs) {
                        (Some(b), Some(now)) => {
                            let (names, dropped) = changed_attributes(&b, now, &op.payload);
                            (Some(names), dropped)
                        }
                        _ => (None, 0),
                    };
                    d.changed.first.push(ChangedPerson {
                        id: shown,
                        attributes,
                        dropped,
                    });
                }
            }
        }
    }
    d.unidentified = seen.unidentified;
    if let Some((conn, dest_id)) = &ledger {
        if cfg.convert.event.is_none() {
            let a = mirror::absent(conn, *dest_id, cfg.convert.id_kind, &d.feed, &seen, FIRST)
                .map_err(q)?;
            d.other_feeds = a.other_feeds;
            d.known = a.known;
            d.absent = a.count;
            d.other_kinds = a.other_kinds;
            if cfg.nightly.mirror.is_some() {
                d.to_remove = Some(Group {
                    count: a.count,
                    first: a.people.iter().map(Identifier::v1_path_value).collect(),
                });
            }
        }
    }
    Ok(d)
}

impl Diff {
    /// The preview for people: one line a group, the first few identifiers named.
    pub fn text(&self) -> String {
        let names = |first: &[String], count: u64| {
            if first.is_empty() {
                return String::new();
            }
            let more = if count > first.len() as u64 {
                ", ..."
            } else {
                ""
            };
            format!("  {}{more}", first.join(", "))
        };
        let mut out = format!(
            "preview of {} against {} (dry run: nothing sent, nothing recorded)\n",
            self.input, self.destination
        );
        out += &format!(
            "  rows read   {:>8}{}\n",
            self.rows,
            if self.invalid > 0 {
                format!("  ({} invalid: never sent)", self.invalid)
            } else {
                String::new()
            }
        );
        out += &format!(
            "  new         {:>8}{}\n",
            self.new.count,
            names(&self.new.first, self.new.count)
        );
        let changed: Vec<String> = self
            .changed
            .first
            .iter()
            .map(|c| match &c.attributes {
                None => format!("{} (attributes not recorded)", c.id),
                Some(a) => {
                    let mut parts = a.clone();
                    if c.dropped > 0 {
                        parts.push(format!("{} no longer sent", c.dropped));
                    }
                    format!("{} ({})", c.id, parts.join(", "))
                }
            })
            .collect();
        out += &format!(
            "  changed     {:>8}{}\n",
            self.changed.count,
            names(&changed, self.changed.count)
        );
        out += &format!(
            "  unchanged   {:>8}{}\n",
            self.unchanged.count,
            names(&self.unchanged.first, self.unchanged.count)
        );
        if let (Some(r), Some(m)) = (&self.to_remove, &self.mirror) {
            out += &format!(
                "  to remove   {:>8}{}  (--mirror {m})\n",
                r.count,
                names(&r.first, r.count)
            );
        } else if self.absent > 0 {
            out += &format!(
                "  absent      {:>8}  (known but in no row; --mirror would remove them)\n",
                self.absent
            );
        }
        out += &format!(
            "  known       {:>8}  people in the state file for this workspace and feed {:?}\n",
            self.known, self.feed
        );
        if self.other_feeds > 0 {
            out += &format!(
                "  {} people of other feeds (or recorded before feeds) are left alone\n",
                self.other_feeds
            );
        }
        if self.no_site_id {
            out += "  no site id: set CUSTOMERIO_SITE_ID and CUSTOMERIO_TRACK_API_KEY (or the job's variables) to compare with that workspace's state\n";
        }
        if self.other_kinds > 0 {
            out += &format!(
                "  {} people known by another identifier kind are left alone\n",
                self.other_kinds
            );
        }
        if self.unidentified > 0 && self.mirror.is_some() {
            out += &format!(
                "  {} rows without a readable identifier: they hold every removal back\n",
                self.unidentified
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_attributes_are_named_from_tonights_row() {
        let before =
            AttrHashes::of([("plan", &b"free"[..]), ("age", b"3"), ("gone", b"x")].into_iter());
        let now = AttrHashes::of([("plan", &b"pro"[..]), ("age", b"3"), ("new", b"y")].into_iter());
        let payload = br#"{"type":"person","identifiers":{"id":"1"},"action":"identify","attributes":{"plan":"pro","age":3,"new":"y"}}"#;
        let (names, dropped) = changed_attributes(&before, &now, payload);
        assert_eq!(names, vec!["new".to_string(), "plan".to_string()]);
        assert_eq!(dropped, 1);
        assert_eq!(AttrHashes::parse(&before).len(), 3);
    }
}
