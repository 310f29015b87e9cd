//! The local state for delta syncs and crash-safe resume: per destination (workspace and
//! host) and person, the hash of the attributes that destination last acknowledged, in one
//! SQLite file (WAL, synchronous=FULL), plus a record of every run and the rows that failed.
//!
//! The ledger only ever claims what an acknowledgement proved. Before a person is sent with
//! values other than the recorded ones, their record is removed (and committed) first: if the
//! send then fails, times out, or the process dies, the ledger knows nothing of that person
//! rather than something that may no longer be true.
//!
//! A person with several rows in one file is recorded once all of them are acknowledged,
//! with the chain of their rows' hashes and the row count (`people.rows`; 1 for one row's
//! hash): see [`crate::groups`]. Ledgers from before that column get it, every record as one
//! row.

mod history;
mod last_run;

pub use last_run::{last_run, LastRun, RunFailure};

pub use history::{FailedRow, History, Repeated, RunEntry, FAILURES_PER_RUN_JSON};

mod objects;
mod state_counts;

pub use objects::Entry;

mod removal;

pub(crate) use removal::{forget_person, forget_removed};

use crate::operation::Key;
use crate::record::{Failure, IdKind, Identifier};
use rusqlite::{params, Connection, OptionalExtension};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

/// A ledger problem: it cannot be opened, is locked by another run, or a write failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Another run holds the lock.
    #[error("{path} is in use by another cio-import run: wait for it to finish, or use another --state file")]
    Locked {
        /// The state file.
        path: String,
    },
    /// SQLite or the file system failed.
    #[error("state file {path}: {message}")]
    Io {
        /// The state file.
        path: String,
        /// What failed.
        message: String,
    },
}

fn io(path: &Path) -> impl Fn(String) -> LedgerError + '_ {
    move |message| LedgerError::Io {
        path: path.display().to_string(),
        message,
    }
}

/// Where acknowledgements come from: one Customer.io workspace (site id) at one API host.
/// A ledger never skips a row on another destination's word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The workspace's site id (not a secret).
    pub site_id: String,
    /// `host:port` of the Track API base.
    pub host: String,
}

impl Destination {
    /// The destination of a run with `site_id` against `endpoint`.
    pub fn new(site_id: &str, endpoint: &url::Url) -> Destination {
        let host = endpoint.host_str().unwrap_or("").to_ascii_lowercase();
        let host = match endpoint.port_or_known_default() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        Destination {
            site_id: site_id.to_string(),
            host,
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "site {} at {}", self.site_id, self.host)
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS destinations (
    id INTEGER PRIMARY KEY,
    site_id TEXT NOT NULL,
    host TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    UNIQUE (site_id, host)
);
CREATE TABLE IF NOT EXISTS people (
    dest INTEGER NOT NULL,
    kind TEXT NOT NULL,
    identifier TEXT NOT NULL,
    hash BLOB NOT NULL,
    acked_at INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    rows INTEGER NOT NULL DEFAULT 1,
    attrs BLOB,
    feed TEXT,
    PRIMARY KEY (dest, kind, identifier)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    dest INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    acked_at INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    PRIMARY KEY (dest, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices (
    dest INTEGER NOT NULL,
    token TEXT NOT NULL,
    kind TEXT NOT NULL,
    identifier TEXT NOT NULL,
    hash BLOB NOT NULL,
    acked_at INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    PRIMARY KEY (dest, token)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS devices_person ON devices (dest, kind, identifier);
CREATE TABLE IF NOT EXISTS suppressed (
    dest INTEGER NOT NULL,
    kind TEXT NOT NULL,
    identifier TEXT NOT NULL,
    since INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    PRIMARY KEY (dest, kind, identifier)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    input TEXT NOT NULL,
    summary TEXT,
    exit_code INTEGER,
    dest INTEGER
);
CREATE TABLE IF NOT EXISTS failures (
    run_id INTEGER NOT NULL,
    row INTEGER NOT NULL,
    line INTEGER NOT NULL,
    identifier TEXT,
    class TEXT NOT NULL,
    status INTEGER,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS failures_run ON failures (run_id);
CREATE TABLE IF NOT EXISTS removals (
    dest INTEGER NOT NULL,
    kind TEXT NOT NULL,
    identifier TEXT NOT NULL,
    mode TEXT NOT NULL,
    since INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    feed TEXT,
    PRIMARY KEY (dest, kind, identifier)
) WITHOUT ROWID;
";

fn connect(path: &Path) -> Result<Connection, LedgerError> {
    let conn = Connection::open(path).map_err(|e| io(path)(e.to_string()))?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000;",
    )
    .map_err(|e| io(path)(e.to_string()))?;
    Ok(conn)
}

/// An open ledger: the run's lock, its id, its destination, and the path.
pub struct Ledger {
    path: PathBuf,
    run_id: i64,
    dest: i64,
    notes: Vec<String>,
    feed: String,
    _lock: File,
}

/// Ledgers written before acknowledgements were tied to a destination have a `people` table
/// without `dest`. Nobody can tell which workspace acknowledged those rows, so they are not
/// trusted: the table is dropped (everyone is sent once) and the reason returned for the log.
fn upgrade(conn: &Connection, path: &Path) -> Result<Option<String>, LedgerError> {
    let e = |e: rusqlite::Error| io(path)(e.to_string());
    let has = |table: &str, column: &str| -> Result<(bool, bool), LedgerError> {
        let mut st = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .map_err(e)?;
        let cols: Vec<String> = st
            .query_map([], |r| r.get(0))
            .map_err(e)?
            .collect::<Result<_, _>>()
            .map_err(e)?;
        Ok((!cols.is_empty(), cols.iter().any(|c| c == column)))
    };
    let mut note = None;
    if let (true, false) = has("people", "dest")? {
        let n: i64 = conn
            .query_row("SELECT count(*) FROM people", [], |r| r.get(0))
            .map_err(e)?;
        conn.execute_batch("DROP TABLE people").map_err(e)?;
        note = Some(format!(
            "{}: its {n} acknowledgements were recorded before the state file noted which \
workspace acknowledged them; they are no longer trusted, so everyone is sent once",
            path.display()
        ));
    }
    // `rows` (issue 14): how many rows of the file the hash covers; 1 for every record made
    // before (each was one row's hash).
    if let (true, false) = has("people", "rows")? {
        conn.execute_batch("ALTER TABLE people ADD COLUMN rows INTEGER NOT NULL DEFAULT 1")
            .map_err(e)?;
    }
    if let (true, false) = has("runs", "dest")? {
        conn.execute_batch("ALTER TABLE runs ADD COLUMN dest INTEGER")
            .map_err(e)?;
    }
    // Per-attribute hashes (issue 14, for the preview's changed attribute names): people
    // acknowledged before have none, and the preview says so; their skip hash still holds.
    if let (true, false) = has("people", "attrs")? {
        conn.execute_batch("ALTER TABLE people ADD COLUMN attrs BLOB")
            .map_err(e)?;
    }
    // `feed` (fix of issue 14): the feed that last sent each person ([`crate::feed`]), and
    // the feed whose mirror owes a removal; NULL for records made before.
    for table in ["people", "removals"] {
        if let (true, false) = has(table, "feed")? {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN feed TEXT"))
                .map_err(e)?;
        }
    }
    Ok(note)
}

impl Ledger {
    /// Opens (creating, owner-only) the ledger at `path`, takes its lock, records a new run
    /// against `dest`. Lookups and acknowledgements of this run are those of `dest` only.
    pub fn open(path: &Path, input: &str, dest: &Destination) -> Result<Ledger, LedgerError> {
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = private_file(&lock_path)
            .map_err(|e| io(path)(format!("cannot create {}: {e}", lock_path.display())))?;
        if lock.try_lock().is_err() {
            return Err(LedgerError::Locked {
                path: path.display().to_string(),
            });
        }
        // Created owner-only before SQLite opens it; SQLite gives its WAL the same mode.
        private_file(path).map_err(|e| io(path)(format!("cannot create: {e}")))?;
        let conn = connect(path)?;
        let e = |e: rusqlite::Error| io(path)(e.to_string());
        let mut notes = Vec::new();
        notes.extend(upgrade(&conn, path)?);
        conn.execute_batch(SCHEMA).map_err(e)?;
        // `feed_members` (second red team, issue A): a person belongs to every feed that sent
        // or skipped them; a ledger of before gets one membership a person, from `people.feed`.
        crate::feed_members::migrate(&conn).map_err(e)?;
        history::add_run_columns(&conn, path)?;
        conn.execute_batch(objects::SCHEMA).map_err(e)?;
        conn.execute_batch(removal::SCHEMA).map_err(e)?;
        let known = destination_id(&conn, dest).map_err(e)?;
        let dest_id = match known {
            Some(id) => id,
            None => {
                let others: Vec<String> = {
                    let mut st = conn
                        .prepare("SELECT site_id, host FROM destinations ORDER BY id")
                        .map_err(e)?;
                    let rows = st
                        .query_map([], |r| {
                            Ok(Destination {
                                site_id: r.get(0)?,
                                host: r.get(1)?,
                            }
                            .to_string())
                        })
                        .map_err(e)?;
                    rows.collect::<Result<_, _>>().map_err(e)?
                };
                if !others.is_empty() {
                    notes.push(format!(
                        "{} holds acknowledgements from {} only; this run goes to {dest}, which \
it has not seen: everyone is sent (nothing is skipped on another workspace's word)",
                        path.display(),
                        others.join(", ")
                    ));
                }
                conn.execute(
                    "INSERT INTO destinations (site_id, host, first_seen) VALUES (?1, ?2, ?3)",
                    params![dest.site_id, dest.host, now()],
                )
                .map_err(e)?;
                conn.last_insert_rowid()
            }
        };
        conn.execute(
            "INSERT INTO runs (started_at, input, dest) VALUES (?1, ?2, ?3)",
            params![now(), input, dest_id],
        )
        .map_err(e)?;
        Ok(Ledger {
            path: path.to_path_buf(),
            run_id: conn.last_insert_rowid(),
            dest: dest_id,
            notes,
            feed: String::new(),
            _lock: lock,
        })
    }

    /// Before a deletion or suppression list: forgets every person of this destination known
    /// by another identifier kind than `keep` (all of them when `keep` is `None`). Customer.io
    /// resolves an email and an id to the same person, so a list by email may remove someone
    /// the ledger knows by id; it must not go on claiming them. Returns how many it forgot.
    pub fn forget_other_kinds(&self, keep: Option<IdKind>) -> Result<usize, LedgerError> {
        let conn = connect(&self.path)?;
        let e = |e: rusqlite::Error| io(&self.path)(e.to_string());
        objects::forget_other_kinds(&conn, self.dest, keep).map_err(e)?;
        let n = match keep {
            Some(k) => conn.execute(
                "DELETE FROM people WHERE dest = ?1 AND kind != ?2",
                params![self.dest, k.as_str()],
            ),
            None => conn.execute("DELETE FROM people WHERE dest = ?1", params![self.dest]),
        }
        .map_err(e)?;
        // Their devices go with them.
        match keep {
            Some(k) => conn.execute(
                "DELETE FROM devices WHERE dest = ?1 AND kind != ?2",
                params![self.dest, k.as_str()],
            ),
            None => conn.execute("DELETE FROM devices WHERE dest = ?1", params![self.dest]),
        }
        .map_err(e)?;
        Ok(n)
    }

    /// Before a relationships deletion list: forgets every relationship of this destination
    /// whose person is known by another identifier kind than `keep` (Customer.io may resolve
    /// both to the same person). Returns how many it forgot.
    pub fn forget_relationships_of_other_kinds(&self, keep: IdKind) -> Result<usize, LedgerError> {
        let conn = connect(&self.path)?;
        objects::forget_other_kinds(&conn, self.dest, Some(keep))
            .map_err(|e| io(&self.path)(e.to_string()))
    }

    /// What the log should say about this ledger before the run (a destination it has not
    /// seen, acknowledgements it no longer trusts).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Names this run's feed ([`crate::feed`]): the people it acknowledges, is about to send,
    /// or skips as unchanged are recorded as this feed's. Set before [`Ledger::lookup`] and
    /// [`Ledger::writer`].
    pub fn set_feed(&mut self, feed: &str) {
        self.feed = feed.to_string();
    }

    /// This run's feed ("" when none was set).
    pub fn feed(&self) -> &str {
        &self.feed
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This run's destination, as the ledger numbers it.
    pub fn dest_id(&self) -> i64 {
        self.dest
    }

    /// This run's number in the ledger.
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// A new connection to the state file (WAL, synchronous=FULL), for a stage that keeps
    /// its own tables (the mirror's pending removals).
    pub fn connection(&self) -> Result<Connection, LedgerError> {
        connect(&self.path)
    }

    /// A read connection for the reader thread. The file is memory-mapped (a re-sync looks
    /// every row up; mapped pages are the kernel's, not the heap's); the page cache, which
    /// holds pages read from the WAL while this run writes, is kept to 2 MiB.
    pub fn lookup(&self) -> Result<Lookup, LedgerError> {
        let conn = connect(&self.path)?;
        conn.execute_batch("PRAGMA mmap_size=1073741824; PRAGMA cache_size=-2048;")
            .map_err(|e| io(&self.path)(e.to_string()))?;
        let any_suppressed = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM suppressed WHERE dest = ?1)",
                params![self.dest],
                |r| r.get(0),
            )
            .map_err(|e| io(&self.path)(e.to_string()))?;
        Ok(Lookup {
            conn,
            path: self.path.clone(),
            dest: self.dest,
            in_txn: std::cell::Cell::new(0),
            any_suppressed,
            feed: self.feed.clone(),
            claims: std::cell::RefCell::new(Vec::new()),
            claimer: None,
        })
    }

    /// Starts the writer thread that records acknowledgements and failures.
    pub fn writer(
        &self,
        on_error: impl Fn(String) + Send + 'static,
    ) -> Result<LedgerWriter, LedgerError> {
        let conn = connect(&self.path)?;
        // Bounded: when commits fall behind, acknowledgements wait here (back-pressure)
        // instead of piling up in memory.
        let (tx, rx) = mpsc::sync_channel::<Msg>(WRITER_BACKLOG);
        let (run_id, dest) = (self.run_id, self.dest);
        let path = self.path.clone();
        let feed = self.feed.clone();
        let thread = std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || write_loop(conn, rx, run_id, dest, &feed, &path, on_error))
            .map_err(|e| io(&self.path)(e.to_string()))?;
        Ok(LedgerWriter {
            tx,
            thread: Some(thread),
        })
    }
}

fn private_file(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        o.mode(0o600);
        let f = o.open(path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(f)
    }
    #[cfg(not(unix))]
    {
        o.open(path)
    }
}

/// Reads what the ledger knows of a person.
pub struct Lookup {
    conn: Connection,
    path: PathBuf,
    dest: i64,
    in_txn: std::cell::Cell<u32>,
    /// Whether this destination has anyone who may be suppressed (else no lookup is made).
    any_suppressed: bool,
    /// This run's feed: people found recorded under another (or none) are claimed for it.
    feed: String,
    /// People to claim for this run's feed, sent to the writer by the thousand.
    claims: std::cell::RefCell<Vec<(IdKind, String)>>,
    claimer: Option<mpsc::SyncSender<Msg>>,
}

/// Claims at most this many people per message to the writer.
const CLAIMS_PER_MSG: usize = 1000;

impl Drop for Lookup {
    fn drop(&mut self) {
        self.flush_claims();
    }
}

/// Lookups per read transaction: one transaction spares the per-statement locking of the WAL
/// index, and ending it now and then lets the writer's checkpoints go on.
const LOOKUPS_PER_TXN: u32 = 20_000;

impl Lookup {
    /// Records the people this lookup finds under another feed as this run's feed's, through
    /// `writer` (see [`crate::feed`]). Without it, nothing is claimed.
    pub fn claim_through(&mut self, writer: &LedgerWriter) {
        if !self.feed.is_empty() {
            self.claimer = Some(writer.tx.clone());
        }
    }

    fn flush_claims(&self) {
        let people = std::mem::take(&mut *self.claims.borrow_mut());
        if let (Some(tx), false) = (&self.claimer, people.is_empty()) {
            let _ = tx.send(Msg::Claim(people));
        }
    }

    /// The hash this run's destination last acknowledged for `id`, if any. A record without
    /// a hash (its values were forgotten before a send that was never acknowledged) is a
    /// member of its feed whose values are unknown: `None`.
    pub fn hash_of(&self, id: &Identifier) -> Result<Option<[u8; 16]>, LedgerError> {
        self.count_lookup()?;
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT hash, feed FROM people WHERE dest = ?1 AND kind = ?2 AND identifier = ?3",
            )
            .map_err(|e| io(&self.path)(e.to_string()))?;
        let got: Option<(Vec<u8>, Option<String>)> = st
            .query_row(params![self.dest, id.kind.as_str(), id.value], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(|e| io(&self.path)(e.to_string()))?;
        let Some((hash, feed)) = got else {
            return Ok(None);
        };
        if self.claimer.is_some() && feed.as_deref() != Some(self.feed.as_str()) {
            let full = {
                let mut c = self.claims.borrow_mut();
                c.push((id.kind, id.value.clone()));
                c.len() >= CLAIMS_PER_MSG
            };
            if full {
                self.flush_claims();
            }
        }
        Ok(hash.try_into().ok())
    }

    /// Counts a lookup: [`LOOKUPS_PER_TXN`] of them share one read transaction.
    fn count_lookup(&self) -> Result<(), LedgerError> {
        let n = self.in_txn.get();
        if n == 0 || n >= LOOKUPS_PER_TXN {
            let sql = if n == 0 { "BEGIN" } else { "COMMIT; BEGIN" };
            self.conn
                .execute_batch(sql)
                .map_err(|e| io(&self.path)(e.to_string()))?;
            self.in_txn.set(1);
        } else {
            self.in_txn.set(n + 1);
        }
        Ok(())
    }

    /// The hash this run's destination last acknowledged for what `key` names: a person,
    /// an object or a relationship (never an event: see [`Lookup::event_acked`]).
    pub fn hash_of_key(&self, key: Key<'_>) -> Result<Option<[u8; 16]>, LedgerError> {
        match key {
            Key::Entity(_, id) => self.hash_of(id),
            Key::Device(token) => self.device_hash(token),
            Key::Event(_) | Key::Merge => Ok(None),
            Key::Object(_) | Key::Relationship(..) => {
                self.count_lookup()?;
                let got = objects::hash_of(&self.conn, self.dest, key)
                    .map_err(|e| io(&self.path)(e.to_string()))?;
                Ok(got.and_then(|v| v.try_into().ok()))
            }
        }
    }

    /// Whether `id` may be suppressed in this run's destination: a suppression of theirs
    /// was sent (acknowledged or not) and no unsuppression acknowledged since. The workspace
    /// answers 200 to an identify or event for them and keeps nothing, so such an
    /// acknowledgement must not be recorded.
    pub fn suppressed(&self, id: &Identifier) -> Result<bool, LedgerError> {
        if !self.any_suppressed {
            return Ok(false);
        }
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT 1 FROM suppressed WHERE dest = ?1 AND kind = ?2 AND identifier = ?3",
            )
            .map_err(|e| io(&self.path)(e.to_string()))?;
        st.exists(params![self.dest, id.kind.as_str(), id.value])
            .map_err(|e| io(&self.path)(e.to_string()))
    }

    /// The hash this run's destination last acknowledged for the device `token` (whose hash
    /// covers the person it was added to), if any.
    pub fn device_hash(&self, token: &str) -> Result<Option<[u8; 16]>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT hash FROM devices WHERE dest = ?1 AND token = ?2")
            .map_err(|e| io(&self.path)(e.to_string()))?;
        let got: Option<Vec<u8>> = st
            .query_row(params![self.dest, token], |r| r.get(0))
            .optional()
            .map_err(|e| io(&self.path)(e.to_string()))?;
        Ok(got.and_then(|v| v.try_into().ok()))
    }

    /// Whether this run's destination acknowledged the event `event_id`.
    pub fn event_acked(&self, event_id: &str) -> Result<bool, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM events WHERE dest = ?1 AND event_id = ?2")
            .map_err(|e| io(&self.path)(e.to_string()))?;
        st.exists(params![self.dest, event_id])
            .map_err(|e| io(&self.path)(e.to_string()))
    }
}

/// What [`LedgerWriter::forget`] does to a person's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForgetMode {
    /// About to be sent other values: the hash goes (the values are unknown until an
    /// acknowledgement), the record stays, as a member of this run's feed (so that a mirror
    /// still knows them if the send fails and they then vanish from the export).
    Values,
    /// About to be deleted or merged away: the record goes.
    Remove,
    /// About to be suppressed: the record goes, and they are recorded as maybe suppressed.
    Suppress,
}

/// Told when a [`LedgerWriter::forget`] is committed: `true` once durable, `false` if the
/// ledger could not be written (then the people must not be sent).
pub type Forgotten = tokio::sync::oneshot::Sender<bool>;

/// One acknowledged person: identifier kind and value, the hash of what was acknowledged,
/// and its per-attribute hashes ([`crate::preview::AttrHashes`]) when they were computed.
pub type Ack = (Entry, [u8; 16], Option<Box<[u8]>>);

enum Msg {
    Acked(Vec<Ack>),
    /// People with several rows, every row acknowledged: the chain hash and the row count.
    AckedRows(Vec<(IdKind, String, [u8; 16], u32)>),
    /// People whose mirror removal was acknowledged: they leave the ledger.
    Removed(Vec<(IdKind, String)>),
    AckedEvents(Vec<Box<str>>),
    /// Devices acknowledged: token, the person's kind and value, hash.
    AckedDevices(Vec<(Box<str>, IdKind, String, [u8; 16])>),
    /// Devices to forget before they are sent: by token, and every device of these people
    /// (about to be deleted, suppressed or merged away).
    ForgetDevices(Vec<Box<str>>, Vec<(IdKind, String)>, Forgotten),
    /// What to forget, and how (see [`ForgetMode`]): people, objects and relationships;
    /// removing a person or an object forgets its relationships too.
    Forget(Vec<Entry>, ForgetMode, Option<Forgotten>),
    /// People recorded under another feed (or none) that this run's feed read: now its.
    Claim(Vec<(IdKind, String)>),
    Unsuppressed(Vec<(IdKind, String)>),
    Failed(Failure),
    Finish {
        summary: String,
        exit_code: u8,
        done: mpsc::Sender<Result<(), String>>,
    },
}

/// Messages (a batch's acknowledgements, a failure, a forget) waiting for the writer at most.
const WRITER_BACKLOG: usize = 64;

/// Sends acknowledgements to the ledger's thread, which commits them in transactions.
pub struct LedgerWriter {
    tx: mpsc::SyncSender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl LedgerWriter {
    /// People, objects and relationships the API acknowledged, with the hash of what it
    /// acknowledged (and a person's per-attribute hashes, for the preview).
    pub fn acked(&self, people: Vec<Ack>) {
        if !people.is_empty() {
            let _ = self.tx.send(Msg::Acked(people));
        }
    }

    /// People with several rows in the file, all of them acknowledged in this run: the chain
    /// of their rows' hashes ([`crate::groups::chain`]) and how many rows it covers.
    pub fn acked_rows(&self, people: Vec<(IdKind, String, [u8; 16], u32)>) {
        if !people.is_empty() {
            let _ = self.tx.send(Msg::AckedRows(people));
        }
    }

    /// Events the API acknowledged, by id: a later run skips them.
    pub fn acked_events(&self, ids: Vec<Box<str>>) {
        if !ids.is_empty() {
            let _ = self.tx.send(Msg::AckedEvents(ids));
        }
    }

    /// Devices the API acknowledged: token, person, hash. A token is one device: recording
    /// it on one person replaces what was recorded of it on anyone else.
    pub fn acked_devices(&self, devices: Vec<(Box<str>, IdKind, String, [u8; 16])>) {
        if !devices.is_empty() {
            let _ = self.tx.send(Msg::AckedDevices(devices));
        }
    }

    /// Removes what the ledger knows of these devices (by token) and of every device of
    /// `owners`, committed before `done` is told `true`: called before devices are sent with
    /// other values or deleted, and before their people are deleted, suppressed or merged
    /// away (their devices go with them).
    pub fn forget_devices(
        &self,
        tokens: Vec<Box<str>>,
        owners: Vec<(IdKind, String)>,
        done: Forgotten,
    ) {
        if let Err(mpsc::SendError(Msg::ForgetDevices(_, _, done))) =
            self.tx.send(Msg::ForgetDevices(tokens, owners, done))
        {
            let _ = done.send(false);
        }
    }

    /// Removes what the ledger knows of `people`, committed before `done` is told: called
    /// before they are sent with other values, so that a send whose outcome is never known
    /// (a failure, a timeout, a crash) leaves no stale claim behind. With `suppress` (before
    /// a suppression is sent) they are also recorded as maybe suppressed, until an
    /// unsuppression of theirs is acknowledged.
    pub fn forget(&self, entries: Vec<Entry>, mode: ForgetMode, done: Option<Forgotten>) {
        if let Err(mpsc::SendError(Msg::Forget(_, _, Some(done)))) =
            self.tx.send(Msg::Forget(entries, mode, done))
        {
            let _ = done.send(false);
        }
    }

    /// People whose mirror removal the API acknowledged: their pending removal and anything
    /// the ledger knew of them go.
    pub fn removed(&self, people: Vec<(IdKind, String)>) {
        if !people.is_empty() {
            let _ = self.tx.send(Msg::Removed(people));
        }
    }

    /// People whose unsuppression the API acknowledged.
    pub fn unsuppressed(&self, people: Vec<(IdKind, String)>) {
        if !people.is_empty() {
            let _ = self.tx.send(Msg::Unsuppressed(people));
        }
    }

    /// A row that failed in this run (kept for `cio-import state`).
    pub fn failed(&self, f: &Failure) {
        let mut f = f.clone();
        f.raw = crate::record::RawRow::Line(Vec::new());
        let _ = self.tx.send(Msg::Failed(f));
    }

    /// Commits everything, records the run's end, and stops the thread.
    pub fn finish(mut self, summary: String, exit_code: u8) -> Result<(), String> {
        let (done, wait) = mpsc::channel();
        let sent = self.tx.send(Msg::Finish {
            summary,
            exit_code,
            done,
        });
        let result = match sent {
            Ok(()) => wait
                .recv()
                .unwrap_or_else(|_| Err("the ledger thread stopped".into())),
            Err(_) => Err("the ledger thread stopped".into()),
        };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        result
    }
}

fn write_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<Msg>,
    run_id: i64,
    dest: i64,
    feed: &str,
    path: &Path,
    on_error: impl Fn(String),
) {
    // Records of no feed (a ledger without one set) keep NULL.
    let feed = (!feed.is_empty()).then_some(feed);
    let mut broken = false;
    while let Ok(first) = rx.recv() {
        // Group commit: everything that arrived meanwhile goes in the same transaction.
        let mut batch = vec![first];
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        let mut finish = None;
        let mut forgotten = Vec::new();
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            {
                let mut up = tx.prepare_cached(
                    "INSERT INTO people (dest, kind, identifier, hash, acked_at, run_id, rows, attrs, feed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (dest, kind, identifier) DO UPDATE SET hash = excluded.hash, acked_at = excluded.acked_at, run_id = excluded.run_id, rows = excluded.rows, attrs = excluded.attrs, feed = coalesce(excluded.feed, people.feed)",
                )?;
                // A forgotten hash is an empty blob (`hash` is NOT NULL in every version).
                let mut clear = tx.prepare_cached(
                    "UPDATE people SET hash = x'', attrs = NULL, rows = 1, run_id = ?4, feed = coalesce(?5, feed) WHERE dest = ?1 AND kind = ?2 AND identifier = ?3",
                )?;
                let mut claim = tx.prepare_cached(
                    "UPDATE people SET feed = ?4 WHERE dest = ?1 AND kind = ?2 AND identifier = ?3",
                )?;
                let mut ev = tx.prepare_cached(
                    "INSERT INTO events (dest, event_id, acked_at, run_id) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (dest, event_id) DO UPDATE SET acked_at = excluded.acked_at, run_id = excluded.run_id",
                )?;
                let mut dev = tx.prepare_cached(
                    "INSERT INTO devices (dest, token, kind, identifier, hash, acked_at, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (dest, token) DO UPDATE SET kind = excluded.kind, identifier = excluded.identifier, hash = excluded.hash, acked_at = excluded.acked_at, run_id = excluded.run_id",
                )?;
                let mut dev_del =
                    tx.prepare_cached("DELETE FROM devices WHERE dest = ?1 AND token = ?2")?;
                let mut sup = tx.prepare_cached(
                    "INSERT INTO suppressed (dest, kind, identifier, since, run_id) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (dest, kind, identifier) DO NOTHING",
                )?;
                let mut unsup = tx.prepare_cached(
                    "DELETE FROM suppressed WHERE dest = ?1 AND kind = ?2 AND identifier = ?3",
                )?;
                let mut fail = tx.prepare_cached(
                    "INSERT INTO failures (run_id, row, line, identifier, class, status, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                let t = now();
                for m in batch {
                    match m {
                        Msg::Acked(entries) => {
                            for (entry, hash, attrs) in entries {
                                match &entry {
                                    Entry::Person(kind, id) => {
                                        up.execute(params![
                                            dest,
                                            kind.as_str(),
                                            id,
                                            &hash[..],
                                            t,
                                            run_id,
                                            1,
                                            attrs.as_deref(),
                                            feed
                                        ])?;
                                    }
                                    other => objects::record(&tx, dest, run_id, t, other, &hash)?,
                                }
                            }
                        }
                        Msg::AckedRows(people) => {
                            for (kind, id, hash, rows) in people {
                                up.execute(params![
                                    dest,
                                    kind.as_str(),
                                    id,
                                    &hash[..],
                                    t,
                                    run_id,
                                    rows,
                                    None::<&[u8]>,
                                    feed
                                ])?;
                            }
                        }
                        Msg::Removed(people) => {
                            let mut gone = tx.prepare_cached(
                                "DELETE FROM removals WHERE dest = ?1 AND kind = ?2 AND identifier = ?3",
                            )?;
                            for (kind, id) in people {
                                gone.execute(params![dest, kind.as_str(), id])?;
                                // Their relationships and devices went before the removal
                                // was sent (`mirror::record_pending`, by mode).
                                removal::forget_person(&tx, dest, kind, &id)?;
                            }
                        }
                        Msg::AckedEvents(ids) => {
                            for id in ids {
                                ev.execute(params![dest, &*id, t, run_id])?;
                            }
                        }
                        Msg::AckedDevices(devices) => {
                            for (token, kind, id, hash) in devices {
                                dev.execute(params![
                                    dest,
                                    &*token,
                                    kind.as_str(),
                                    id,
                                    &hash[..],
                                    t,
                                    run_id
                                ])?;
                            }
                        }
                        Msg::ForgetDevices(tokens, owners, done) => {
                            for token in tokens {
                                dev_del.execute(params![dest, &*token])?;
                            }
                            // People about to be removed: their record, relationships
                            // and devices go together.
                            for (kind, id) in owners {
                                removal::forget_removed(&tx, dest, kind, &id)?;
                            }
                            forgotten.push(done);
                        }
                        Msg::Forget(entries, mode, done) => {
                            for entry in entries {
                                let Entry::Person(kind, id) = entry else {
                                    objects::forget(&tx, dest, &entry, mode != ForgetMode::Values)?;
                                    continue;
                                };
                                if mode == ForgetMode::Values {
                                    clear.execute(params![
                                        dest,
                                        kind.as_str(),
                                        id,
                                        run_id,
                                        feed
                                    ])?;
                                    continue;
                                }
                                // A removed person's devices went with the owners above
                                // (the merge's primary, also here, keeps theirs); their
                                // relationships go here, matched as their kind matches.
                                removal::forget_relationships(&tx, dest, kind, &id)?;
                                removal::forget_person(&tx, dest, kind, &id)?;
                                if mode == ForgetMode::Suppress {
                                    sup.execute(params![dest, kind.as_str(), id, t, run_id])?;
                                }
                            }
                            forgotten.extend(done);
                        }
                        Msg::Claim(people) => {
                            if let Some(f) = feed {
                                for (kind, id) in people {
                                    claim.execute(params![dest, kind.as_str(), id, f])?;
                                }
                            }
                        }
                        Msg::Unsuppressed(people) => {
                            for (kind, id) in people {
                                unsup.execute(params![dest, kind.as_str(), id])?;
                            }
                        }
                        Msg::Failed(f) => {
                            fail.execute(params![
                                run_id,
                                f.pos.row as i64,
                                f.pos.line as i64,
                                f.identifier,
                                f.class.as_str(),
                                f.status.map(i64::from),
                                f.message
                            ])?;
                        }
                        Msg::Finish {
                            summary,
                            exit_code,
                            done,
                        } => finish = Some((summary, exit_code, done)),
                    }
                }
                if let Some((summary, exit_code, _)) = &finish {
                    tx.execute(
                        "UPDATE runs SET ended_at = ?1, summary = ?2, exit_code = ?3 WHERE id = ?4",
                        params![now(), summary, *exit_code as i64, run_id],
                    )?;
                }
            }
            tx.commit()
        })();
        // Those waiting to send hear only of a durable commit.
        for done in forgotten {
            let _ = done.send(result.is_ok() && !broken);
        }
        if let Err(e) = &result {
            if !broken {
                broken = true;
                on_error(format!(
                    "cannot write the state file {}: {e} (disk full?): free some space, then re-run; \
rows acknowledged since the last commit will be sent again",
                    path.display()
                ));
            }
        }
        if let Some((_, _, done)) = finish {
            let _ = done.send(result.map_err(|e| e.to_string()));
            return;
        }
    }
}

/// The number of runs `cio-import state` shows by default (`--runs`).
pub const DEFAULT_STATE_RUNS: usize = 10;

/// The id this ledger gives the workspace `dest`, if it has seen it.
pub(crate) fn destination_id(
    conn: &Connection,
    dest: &Destination,
) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT id FROM destinations WHERE site_id = ?1 AND host = ?2",
        params![dest.site_id, dest.host],
        |r| r.get(0),
    )
    .optional()
}

fn open_read_only(path: &Path) -> Result<Connection, LedgerError> {
    if !path.exists() {
        return Err(io(path)("no such file".into()));
    }
    Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| io(path)(e.to_string()))
}

/// What `cio-import state PATH` shows, with the last [`DEFAULT_STATE_RUNS`] runs.
pub fn describe(path: &Path) -> Result<String, LedgerError> {
    describe_runs(path, DEFAULT_STATE_RUNS)
}

/// What `cio-import state PATH --json` prints: the destinations with their people, and the
/// [`History`] of the last `runs` runs.
pub fn state_json(path: &Path, runs: usize) -> Result<serde_json::Value, LedgerError> {
    let conn = open_read_only(path)?;
    let q = |e: rusqlite::Error| io(path)(e.to_string());
    let has_dest: bool = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('people') WHERE name = 'dest'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(q)?
        > 0;
    let has_events: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(q)?
        > 0;
    let events = if has_events {
        "(SELECT count(*) FROM events e WHERE e.dest = d.id)"
    } else {
        "0"
    };
    let mut destinations = Vec::new();
    if has_dest {
        let mut st = conn
            .prepare(&format!(
                "SELECT d.site_id, d.host, (SELECT count(*) FROM people p WHERE p.dest = d.id AND length(p.hash) = 16), \
                 {events}, {}, {}, {} FROM destinations d ORDER BY d.id",
                state_counts::per_dest(&conn, "objects").map_err(q)?,
                state_counts::per_dest(&conn, "relationships").map_err(q)?,
                state_counts::per_dest(&conn, "devices").map_err(q)?,
            ))
            .map_err(q)?;
        let rows = st
            .query_map([], |r| {
                Ok(serde_json::json!({
                    "site_id": r.get::<_, String>(0)?,
                    "host": r.get::<_, String>(1)?,
                    "people": r.get::<_, i64>(2)?,
                    "events": r.get::<_, i64>(3)?,
                    "objects": r.get::<_, i64>(4)?,
                    "relationships": r.get::<_, i64>(5)?,
                    "devices": r.get::<_, i64>(6)?,
                }))
            })
            .map_err(q)?;
        for r in rows {
            destinations.push(r.map_err(q)?);
        }
    }
    let history = history::history(&conn, path, runs)?;
    let pending_removals = if has_dest {
        crate::mirror::pending_json(&conn).map_err(q)?
    } else {
        Vec::new()
    };
    Ok(serde_json::json!({
        "path": path.display().to_string(),
        "acknowledgements_tied_to_workspace": has_dest,
        "destinations": destinations,
        "pending_removals": pending_removals,
        "runs_total": history.runs_total,
        "runs": history.runs,
        "repeated_failures": history.repeated_failures,
    }))
}

/// What `cio-import state PATH --runs N` shows: the destinations, the trend of the last `runs`
/// runs' counts, and their failed rows.
pub fn describe_runs(path: &Path, runs: usize) -> Result<String, LedgerError> {
    let conn = open_read_only(path)?;
    let q = |e: rusqlite::Error| io(path)(e.to_string());
    let mut out = String::new();
    let has_dest: bool = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('people') WHERE name = 'dest'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(q)?
        > 0;
    out.push_str(&format!("{}:\n", path.display()));
    if has_dest {
        let mut st = conn
            .prepare(
                "SELECT d.site_id, d.host, (SELECT count(*) FROM people p WHERE p.dest = d.id AND length(p.hash) = 16) \
                 FROM destinations d ORDER BY d.id",
            )
            .map_err(q)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(q)?;
        let mut any = false;
        for row in rows {
            let (site_id, host, n) = row.map_err(q)?;
            any = true;
            let d = Destination { site_id, host };
            out.push_str(&format!("  {n} people acknowledged by {d}"));
            let several: i64 = conn
                .query_row(
                    "SELECT count(*) FROM people p JOIN destinations d ON d.id = p.dest \
                     WHERE d.site_id = ?1 AND d.host = ?2 AND p.rows > 1 AND length(p.hash) = 16",
                    params![d.site_id, d.host],
                    |r| r.get(0),
                )
                .unwrap_or(0);
            if several > 0 {
                out.push_str(&format!(
                    " ({several} of them from several rows of one file)"
                ));
            }
            out.push('\n');
            let dest = destination_id(&conn, &d)
                .map_err(q)?
                .ok_or_else(|| io(path)(format!("{d}: not in the state file")))?;
            if let Some((o, r)) = objects::counts(&conn, dest).map_err(q)? {
                if o + r > 0 {
                    out.push_str(&format!(
                        "  {o} objects and {r} relationships acknowledged by {d}\n"
                    ));
                }
            }
            let devices = state_counts::devices(&conn, dest).map_err(q)?;
            if devices > 0 {
                out.push_str(&format!("  {devices} devices acknowledged by {d}\n"));
            }
        }
        if !any {
            out.push_str("  no acknowledgements yet\n");
        }
        out.push_str(&crate::mirror::describe_pending(&conn).map_err(q)?);
    } else {
        out.push_str(
            "  acknowledgements recorded by an older version, not tied to a workspace: \
the next run sends everyone once\n",
        );
    }
    out.push_str(&history::history(&conn, path, runs)?.text());
    Ok(out)
}
