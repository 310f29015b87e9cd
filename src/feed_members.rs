//! Feed membership: a person belongs to every feed that sent or skipped them (table
//! `feed_members (dest, kind, identifier, feed)`), not only to the last one (`people.feed`).
//!
//! A mirror run ([`crate::mirror::absent`]) considers its own members absent tonight; for
//! each it drops that membership, and removes the person only when no other feed still holds
//! them. Triggers on `people` keep the table in step with every write of `people.feed`
//! (acknowledgement, cleared hash, claim) and with every removal of a person, so the writer's
//! statements need no change. A ledger of before gets one membership a person, from
//! `people.feed`.

use rusqlite::{params, Connection};

/// Creates `feed_members` and its triggers when missing; on creation, fills it from
/// `people.feed` (the one feed a person had before).
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'feed_members'",
        [],
        |r| r.get(0),
    )?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS feed_members (
            dest INTEGER NOT NULL,
            kind TEXT NOT NULL,
            identifier TEXT NOT NULL,
            feed TEXT NOT NULL,
            PRIMARY KEY (dest, kind, identifier, feed)
        ) WITHOUT ROWID;
        -- Not `INSERT OR IGNORE`: an upsert on `people` would impose its own conflict policy.
        CREATE TRIGGER IF NOT EXISTS feed_members_ins AFTER INSERT ON people
            WHEN NEW.feed IS NOT NULL BEGIN
            INSERT INTO feed_members (dest, kind, identifier, feed)
                SELECT NEW.dest, NEW.kind, NEW.identifier, NEW.feed WHERE NOT EXISTS
                (SELECT 1 FROM feed_members m WHERE m.dest = NEW.dest AND m.kind = NEW.kind
                 AND m.identifier = NEW.identifier AND m.feed = NEW.feed);
        END;
        CREATE TRIGGER IF NOT EXISTS feed_members_upd AFTER UPDATE OF feed ON people
            WHEN NEW.feed IS NOT NULL BEGIN
            INSERT INTO feed_members (dest, kind, identifier, feed)
                SELECT NEW.dest, NEW.kind, NEW.identifier, NEW.feed WHERE NOT EXISTS
                (SELECT 1 FROM feed_members m WHERE m.dest = NEW.dest AND m.kind = NEW.kind
                 AND m.identifier = NEW.identifier AND m.feed = NEW.feed);
        END;
        CREATE TRIGGER IF NOT EXISTS feed_members_del AFTER DELETE ON people BEGIN
            DELETE FROM feed_members WHERE dest = OLD.dest AND kind = OLD.kind
                AND identifier = OLD.identifier;
        END;",
    )?;
    if exists == 0 {
        conn.execute(
            "INSERT OR IGNORE INTO feed_members (dest, kind, identifier, feed)
             SELECT dest, kind, identifier, feed FROM people WHERE feed IS NOT NULL",
            [],
        )?;
    }
    Ok(())
}

/// Whether `conn`'s ledger has the table (a state file of an older version, opened read-only,
/// has none).
pub fn present(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'feed_members'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// A person of `feed` absent from it tonight whom `other` still holds: the membership in
/// `feed` is dropped and `people.feed` names `other` (the person stays, values and all).
pub fn leave(
    conn: &Connection,
    dest: i64,
    kind: &str,
    identifier: &str,
    feed: &str,
    other: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM feed_members WHERE dest = ?1 AND kind = ?2 AND identifier = ?3 AND feed = ?4",
        params![dest, kind, identifier, feed],
    )?;
    conn.execute(
        "UPDATE people SET feed = ?4 WHERE dest = ?1 AND kind = ?2 AND identifier = ?3",
        params![dest, kind, identifier, other],
    )?;
    Ok(())
}
