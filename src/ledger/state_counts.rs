//! What `cio-import state` counts per workspace besides people and events: objects,
//! relationships and devices (tables an older state file may lack: counted 0).

use rusqlite::Connection;

/// Whether `conn`'s ledger has `table`.
fn has(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// An SQL expression counting `table`'s rows of destination `d.id` (`0` without the table).
/// `table` is one of this module's callers' constants, never user input.
pub(super) fn per_dest(conn: &Connection, table: &str) -> rusqlite::Result<String> {
    Ok(if has(conn, table)? {
        format!("(SELECT count(*) FROM {table} t WHERE t.dest = d.id)")
    } else {
        "0".into()
    })
}

/// The devices the ledger holds for destination `dest`.
pub(super) fn devices(conn: &Connection, dest: i64) -> rusqlite::Result<i64> {
    if !has(conn, "devices")? {
        return Ok(0);
    }
    conn.query_row(
        "SELECT count(*) FROM devices WHERE dest = ?1",
        [dest],
        |r| r.get(0),
    )
}
