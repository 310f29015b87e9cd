//! Forgetting a person, in one place: [`forget_person`] when the person is about to get other
//! values (their record alone goes), [`forget_removed`] when the person is about to be removed
//! from Customer.io (a delete, a suppression, a merge's secondary, a mirror's removal): their
//! record, their relationships and their devices go together, since Customer.io drops them
//! with the person. Whoever removes a person from the ledger calls this, so no path forgets
//! the person and leaves a claim about their relationships or devices.
//!
//! Customer.io (and [`crate::convert::merge::same_person`]) compare emails without case:
//! `Bob@X.io` and `bob@x.io` are one person. An email is therefore forgotten under every
//! case (ASCII, SQLite's `NOCASE`); ids and cio ids are compared exactly. Partial indexes
//! ([`SCHEMA`]) keep these deletes off a table scan.

use crate::record::IdKind;
use rusqlite::{params, Connection};

/// The indexes that let an email be found without case, created in any ledger that lacks
/// them (after the tables: [`super::SCHEMA`] and the objects' schema).
pub(super) const SCHEMA: &str = "
CREATE INDEX IF NOT EXISTS people_email_nocase ON people (dest, identifier COLLATE NOCASE)
    WHERE kind = 'email';
CREATE INDEX IF NOT EXISTS devices_email_nocase ON devices (dest, identifier COLLATE NOCASE)
    WHERE kind = 'email';
CREATE INDEX IF NOT EXISTS relationships_email_nocase
    ON relationships (dest, identifier COLLATE NOCASE) WHERE kind = 'email';
";

/// Deletes the rows of `table` that name the person (`kind`, `id`) of destination `dest`:
/// an email under any case, another identifier exactly.
fn delete_of(
    conn: &Connection,
    table: &str,
    dest: i64,
    kind: IdKind,
    id: &str,
) -> rusqlite::Result<usize> {
    if kind == IdKind::Email {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE dest = ?1 AND kind = 'email' \
             AND identifier = ?2 COLLATE NOCASE"
        ))?
        .execute(params![dest, id.trim()])
    } else {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE dest = ?1 AND kind = ?2 AND identifier = ?3"
        ))?
        .execute(params![dest, kind.as_str(), id])
    }
}

/// The person is about to get other values: the ledger no longer claims what they hold.
pub(crate) fn forget_person(
    conn: &Connection,
    dest: i64,
    kind: IdKind,
    id: &str,
) -> rusqlite::Result<()> {
    delete_of(conn, "people", dest, kind, id).map(drop)
}

/// The person is about to be removed (or was): their record, their relationships and their
/// devices are forgotten together.
pub(crate) fn forget_removed(
    conn: &Connection,
    dest: i64,
    kind: IdKind,
    id: &str,
) -> rusqlite::Result<()> {
    for table in ["people", "relationships", "devices"] {
        delete_of(conn, table, dest, kind, id)?;
    }
    Ok(())
}

/// Forgets the person's relationships alone (their record and devices stay): a merge's
/// primary, whose relationships may change.
pub(crate) fn forget_relationships(
    conn: &Connection,
    dest: i64,
    kind: IdKind,
    id: &str,
) -> rusqlite::Result<()> {
    delete_of(conn, "relationships", dest, kind, id).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::SCHEMA).unwrap();
        conn.execute_batch(super::super::objects::SCHEMA).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.execute_batch(
            "INSERT INTO people (dest, kind, identifier, hash, acked_at, run_id)
                 VALUES (1, 'email', 'Bob@X.io', x'00', 0, 1), (1, 'id', '12', x'00', 0, 1),
                        (1, 'id', '13', x'00', 0, 1), (2, 'id', '12', x'00', 0, 1);
             INSERT INTO devices (dest, token, kind, identifier, hash, acked_at, run_id)
                 VALUES (1, 'tokbob', 'email', 'Bob@X.io', x'00', 0, 1),
                        (1, 'tok12', 'id', '12', x'00', 0, 1),
                        (1, 'tok13', 'id', '13', x'00', 0, 1);
             INSERT INTO relationships (dest, kind, identifier, type_id, object_id, hash,
                                        acked_at, run_id)
                 VALUES (1, 'id', '12', '1', 'acme', x'00', 0, 1),
                        (1, 'email', 'BOB@x.io', '1', 'acme', x'00', 0, 1),
                        (1, 'id', '13', '1', 'acme', x'00', 0, 1);",
        )
        .unwrap();
        conn
    }

    fn rows(conn: &Connection, table: &str) -> Vec<String> {
        let mut st = conn
            .prepare(&format!(
                "SELECT dest || '|' || kind || '|' || identifier FROM {table} ORDER BY 1"
            ))
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_removed_person_takes_their_relationships_and_devices() {
        let conn = ledger();
        forget_removed(&conn, 1, IdKind::Id, "12").unwrap();
        assert_eq!(
            rows(&conn, "people"),
            ["1|email|Bob@X.io", "1|id|13", "2|id|12"]
        );
        assert_eq!(
            rows(&conn, "relationships"),
            ["1|email|BOB@x.io", "1|id|13"]
        );
        assert_eq!(rows(&conn, "devices"), ["1|email|Bob@X.io", "1|id|13"]);
    }

    #[test]
    fn an_email_is_forgotten_under_any_case() {
        let conn = ledger();
        forget_removed(&conn, 1, IdKind::Email, "bob@x.io").unwrap();
        assert_eq!(rows(&conn, "people"), ["1|id|12", "1|id|13", "2|id|12"]);
        assert_eq!(rows(&conn, "relationships"), ["1|id|12", "1|id|13"]);
        assert_eq!(rows(&conn, "devices"), ["1|id|12", "1|id|13"]);
        // An id is compared exactly.
        let conn = ledger();
        forget_person(&conn, 1, IdKind::Id, "12 ").unwrap();
        assert_eq!(rows(&conn, "people").len(), 4);
    }

    #[test]
    fn the_email_deletes_use_their_index() {
        let conn = ledger();
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN DELETE FROM people WHERE dest = ?1 AND kind = 'email' \
                 AND identifier = ?2 COLLATE NOCASE",
            )
            .unwrap()
            .query_map(params![1, "x"], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter().any(|p| p.contains("people_email_nocase")),
            "{plan:?}"
        );
    }
}
