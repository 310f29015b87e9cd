//! The latest run against one workspace, as `verify --state` checks it: its number, the
//! people it recorded (acknowledged), and the rows it failed. Always the latest run, even when
//! it recorded nobody (an update-only or all-failed run): checking an older run's people
//! instead would answer a question nobody asked.

use super::{io, Destination, LedgerError};
use crate::operation::{Entity, Key};
use crate::record::{IdKind, Identifier};
use rusqlite::params;
use std::collections::HashSet;
use std::path::Path;

/// How many failed rows of the run are listed (all are counted).
pub const FAILURES_LISTED: usize = 10_000;

/// A row the run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFailure {
    /// Its row in the file the run read.
    pub row: u64,
    /// The line an editor shows.
    pub line: u64,
    /// Its identifier, when it had one.
    pub identifier: Option<String>,
    /// `invalid`, `rejected`, `exhausted`, `not_attempted`.
    pub class: String,
    /// Why.
    pub message: String,
}

/// The latest run against a workspace.
#[derive(Clone, Debug, Default)]
pub struct LastRun {
    /// Its number in the ledger.
    pub run: i64,
    /// The people it recorded, by [`Key::seen_hash`].
    pub people: HashSet<u128>,
    /// Its failed rows (the first [`FAILURES_LISTED`]).
    pub failures: Vec<RunFailure>,
    /// How many rows it failed.
    pub failed: u64,
}

/// The latest run the ledger at `path` holds for `dest`; `None` when it holds none.
pub fn last_run(path: &Path, dest: &Destination) -> Result<Option<LastRun>, LedgerError> {
    let conn = super::open_read_only(path)?;
    let q = |e: rusqlite::Error| io(path)(e.to_string());
    let d = super::destination_id(&conn, dest).map_err(q)?;
    let Some(d) = d else { return Ok(None) };
    // The latest run against this workspace; a ledger whose runs name no workspace (older
    // versions) falls back to the latest run that recorded someone.
    let run: Option<i64> = conn
        .query_row(
            "SELECT max(id) FROM runs WHERE dest = ?1",
            params![d],
            |r| r.get(0),
        )
        .map_err(q)?;
    let run = match run {
        Some(r) => r,
        None => {
            let r: Option<i64> = conn
                .query_row(
                    "SELECT max(run_id) FROM people WHERE dest = ?1",
                    params![d],
                    |r| r.get(0),
                )
                .map_err(q)?;
            match r {
                Some(r) => r,
                None => return Ok(None),
            }
        }
    };
    let mut people = HashSet::new();
    // Only people whose hash is set were recorded: a failed send keeps the person's record
    // with its hash cleared and the run's number (they are named from `failures`).
    let mut st = conn
        .prepare(
            "SELECT kind, identifier FROM people WHERE dest = ?1 AND run_id = ?2 AND length(hash) = 16",
        )
        .map_err(q)?;
    let rows = st
        .query_map(params![d, run], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(q)?;
    for row in rows {
        let (kind, value) = row.map_err(q)?;
        let kind = match kind.as_str() {
            "email" => IdKind::Email,
            "cio_id" => IdKind::CioId,
            _ => IdKind::Id,
        };
        let id = Identifier { kind, value };
        people.insert(Key::Entity(Entity::Person, &id).seen_hash());
    }
    let failed: i64 = conn
        .query_row(
            "SELECT count(*) FROM failures WHERE run_id = ?1",
            params![run],
            |r| r.get(0),
        )
        .map_err(q)?;
    let mut st = conn
        .prepare(
            "SELECT row, line, identifier, class, message FROM failures WHERE run_id = ?1 \
ORDER BY row LIMIT ?2",
        )
        .map_err(q)?;
    let failures = st
        .query_map(params![run, FAILURES_LISTED as i64], |r| {
            Ok(RunFailure {
                row: r.get::<_, i64>(0)?.max(0) as u64,
                line: r.get::<_, i64>(1)?.max(0) as u64,
                identifier: r.get(2)?,
                class: r.get(3)?,
                message: r.get(4)?,
            })
        })
        .map_err(q)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(q)?;
    Ok(Some(LastRun {
        run,
        people,
        failures,
        failed: failed.max(0) as u64,
    }))
}
