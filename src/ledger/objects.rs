//! What the ledger keeps of objects and relationships (`--kind objects`, `--kind
//! relationships`), beside the people: per destination, the hash of the attributes it last
//! acknowledged for each object (by object type id and object id) and each person's
//! relationship to an object (by the person's identifier and the object).
//!
//! The rules are the people's: an acknowledged identify or `add_relationships` is recorded;
//! what is about to change is forgotten (durably) before it is sent, so an unknown outcome
//! leaves no claim; a delete forgets. Customer.io removes an object's relationships when the
//! object is deleted, and a person's when the person is deleted or suppressed, so removing
//! either end forgets the relationships that touch it.
//!
//! Ledgers written before these tables existed get them when they are next opened
//! (`CREATE TABLE IF NOT EXISTS`, [`SCHEMA`]): they hold no objects yet, so nothing is
//! skipped on their word.

use crate::operation::{Entity, Key, Operation};
use crate::record::{IdKind, ObjectRef};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

/// The tables of objects and relationships, created in any ledger that lacks them.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (
    dest INTEGER NOT NULL,
    type_id TEXT NOT NULL,
    object_id TEXT NOT NULL,
    hash BLOB NOT NULL,
    acked_at INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    PRIMARY KEY (dest, type_id, object_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS relationships (
    dest INTEGER NOT NULL,
    kind TEXT NOT NULL,
    identifier TEXT NOT NULL,
    type_id TEXT NOT NULL,
    object_id TEXT NOT NULL,
    hash BLOB NOT NULL,
    acked_at INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    PRIMARY KEY (dest, kind, identifier, type_id, object_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS relationships_object ON relationships (dest, type_id, object_id);
";

/// What the ledger names: a person, an object, or a person's relationship to an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A person, by identifier kind and value.
    Person(IdKind, String),
    /// An object.
    Object(ObjectRef),
    /// A person's relationship to an object.
    Relationship(IdKind, String, ObjectRef),
}

impl Entry {
    /// What `op` is about, in the ledger's terms (an event is named by its person here;
    /// events are recorded by id, apart).
    pub fn of(op: &Operation) -> Entry {
        match (op.entity, op.object.as_deref()) {
            (Entity::Object, Some(o)) => Entry::Object(o.clone()),
            (Entity::Person, Some(o)) => {
                Entry::Relationship(op.identifier.kind, op.identifier.value.clone(), o.clone())
            }
            _ => Entry::Person(op.identifier.kind, op.identifier.value.clone()),
        }
    }
}

/// The hash the destination `dest` last acknowledged for an object or a relationship
/// (`None` for any other key).
pub(super) fn hash_of(
    conn: &Connection,
    dest: i64,
    key: Key<'_>,
) -> rusqlite::Result<Option<Vec<u8>>> {
    match key {
        Key::Object(o) => conn
            .prepare_cached(
                "SELECT hash FROM objects WHERE dest = ?1 AND type_id = ?2 AND object_id = ?3",
            )?
            .query_row(params![dest, o.type_id, o.id], |r| r.get(0))
            .optional(),
        Key::Relationship(p, o) => conn
            .prepare_cached(
                "SELECT hash FROM relationships WHERE dest = ?1 AND kind = ?2 AND identifier = ?3 \
                 AND type_id = ?4 AND object_id = ?5",
            )?
            .query_row(
                params![dest, p.kind.as_str(), p.value, o.type_id, o.id],
                |r| r.get(0),
            )
            .optional(),
        Key::Entity(..) | Key::Event(_) | Key::Device(_) | Key::Merge => Ok(None),
    }
}

/// Records an acknowledged object or relationship (people are recorded by the caller).
pub(super) fn record(
    tx: &Transaction<'_>,
    dest: i64,
    run_id: i64,
    at: i64,
    entry: &Entry,
    hash: &[u8; 16],
) -> rusqlite::Result<()> {
    match entry {
        Entry::Person(..) => Ok(()),
        Entry::Object(o) => tx
            .prepare_cached(
                "INSERT INTO objects (dest, type_id, object_id, hash, acked_at, run_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (dest, type_id, object_id) DO UPDATE \
                 SET hash = excluded.hash, acked_at = excluded.acked_at, run_id = excluded.run_id",
            )?
            .execute(params![dest, o.type_id, o.id, &hash[..], at, run_id])
            .map(drop),
        Entry::Relationship(kind, id, o) => tx
            .prepare_cached(
                "INSERT INTO relationships (dest, kind, identifier, type_id, object_id, hash, \
                 acked_at, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (dest, kind, identifier, type_id, object_id) DO UPDATE \
                 SET hash = excluded.hash, acked_at = excluded.acked_at, run_id = excluded.run_id",
            )?
            .execute(params![
                dest,
                kind.as_str(),
                id,
                o.type_id,
                o.id,
                &hash[..],
                at,
                run_id
            ])
            .map(drop),
    }
}

/// Forgets an object or a relationship; with `removed` (a delete or suppression is about
/// to be sent), also every relationship of the person or object removed.
pub(super) fn forget(
    tx: &Transaction<'_>,
    dest: i64,
    entry: &Entry,
    removed: bool,
) -> rusqlite::Result<()> {
    match entry {
        Entry::Person(kind, id) if removed => {
            super::removal::forget_relationships(tx, dest, *kind, id)
        }
        Entry::Person(..) => Ok(()),
        Entry::Object(o) => {
            tx.prepare_cached(
                "DELETE FROM objects WHERE dest = ?1 AND type_id = ?2 AND object_id = ?3",
            )?
            .execute(params![dest, o.type_id, o.id])?;
            if removed {
                tx.prepare_cached(
                    "DELETE FROM relationships WHERE dest = ?1 AND type_id = ?2 AND object_id = ?3",
                )?
                .execute(params![dest, o.type_id, o.id])?;
            }
            Ok(())
        }
        // An email under any case: Customer.io compares emails without it.
        Entry::Relationship(IdKind::Email, id, o) => tx
            .prepare_cached(
                "DELETE FROM relationships WHERE dest = ?1 AND kind = 'email' \
                 AND identifier = ?2 COLLATE NOCASE AND type_id = ?3 AND object_id = ?4",
            )?
            .execute(params![dest, id.trim(), o.type_id, o.id])
            .map(drop),
        Entry::Relationship(kind, id, o) => tx
            .prepare_cached(
                "DELETE FROM relationships WHERE dest = ?1 AND kind = ?2 AND identifier = ?3 \
                 AND type_id = ?4 AND object_id = ?5",
            )?
            .execute(params![dest, kind.as_str(), id, o.type_id, o.id])
            .map(drop),
    }
}

/// Before a people deletion list: the relationships of people known by another identifier
/// kind than `keep` (all, with `None`) are forgotten with them.
pub(super) fn forget_other_kinds(
    conn: &Connection,
    dest: i64,
    keep: Option<IdKind>,
) -> rusqlite::Result<usize> {
    match keep {
        Some(k) => conn.execute(
            "DELETE FROM relationships WHERE dest = ?1 AND kind != ?2",
            params![dest, k.as_str()],
        ),
        None => conn.execute("DELETE FROM relationships WHERE dest = ?1", params![dest]),
    }
}

/// `cio-import state`: how many objects and relationships each destination acknowledged,
/// when the ledger has the tables (an older one has none).
pub(super) fn counts(conn: &Connection, dest: i64) -> rusqlite::Result<Option<(i64, i64)>> {
    let has: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'objects'",
        [],
        |r| r.get(0),
    )?;
    if has == 0 {
        return Ok(None);
    }
    let objects = conn.query_row(
        "SELECT count(*) FROM objects WHERE dest = ?1",
        [dest],
        |r| r.get(0),
    )?;
    let relationships = conn.query_row(
        "SELECT count(*) FROM relationships WHERE dest = ?1",
        [dest],
        |r| r.get(0),
    )?;
    Ok(Some((objects, relationships)))
}
