//! The local state for delta syncs and crash-safe resume: per person, the hash of the
//! attributes the API last acknowledged, in one SQLite file (WAL, synchronous=FULL), plus a
//! record of every run and the rows that failed in it.

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

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS people (
    kind TEXT NOT NULL,
    identifier TEXT NOT NULL,
    hash BLOB NOT NULL,
    acked_at INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    PRIMARY KEY (kind, identifier)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    input TEXT NOT NULL,
    summary TEXT,
    exit_code INTEGER
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
";

fn connect(path: &Path) -> Result<Connection, LedgerError> {
    let conn = Connection::open(path).map_err(|e| io(path)(e.to_string()))?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000;",
    )
    .map_err(|e| io(path)(e.to_string()))?;
    Ok(conn)
}

/// An open ledger: the run's lock, its id, and the path.
pub struct Ledger {
    path: PathBuf,
    run_id: i64,
    _lock: File,
}

impl Ledger {
    /// Opens (creating, owner-only) the ledger at `path`, takes its lock, records a new run.
    pub fn open(path: &Path, input: &str) -> Result<Ledger, LedgerError> {
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
        conn.execute_batch(SCHEMA)
            .map_err(|e| io(path)(e.to_string()))?;
        conn.execute(
            "INSERT INTO runs (started_at, input) VALUES (?1, ?2)",
            params![now(), input],
        )
        .map_err(|e| io(path)(e.to_string()))?;
        Ok(Ledger {
            path: path.to_path_buf(),
            run_id: conn.last_insert_rowid(),
            _lock: lock,
        })
    }

    /// A read connection for the reader thread (memory-mapped, with a large page cache: a
    /// re-sync looks every row up).
    pub fn lookup(&self) -> Result<Lookup, LedgerError> {
        let conn = connect(&self.path)?;
        conn.execute_batch("PRAGMA mmap_size=1073741824; PRAGMA cache_size=-65536;")
            .map_err(|e| io(&self.path)(e.to_string()))?;
        Ok(Lookup {
            conn,
            path: self.path.clone(),
            in_txn: std::cell::Cell::new(0),
        })
    }

    /// Starts the writer thread that records acknowledgements and failures.
    pub fn writer(
        &self,
        on_error: impl Fn(String) + Send + 'static,
    ) -> Result<LedgerWriter, LedgerError> {
        let conn = connect(&self.path)?;
        let (tx, rx) = mpsc::channel::<Msg>();
        let run_id = self.run_id;
        let path = self.path.clone();
        let thread = std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || write_loop(conn, rx, run_id, &path, on_error))
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
    in_txn: std::cell::Cell<u32>,
}

/// Lookups per read transaction: one transaction spares the per-statement locking of the WAL
/// index, and ending it now and then lets the writer's checkpoints go on.
const LOOKUPS_PER_TXN: u32 = 20_000;

impl Lookup {
    /// The hash last acknowledged for `id`, if any.
    pub fn hash_of(&self, id: &Identifier) -> Result<Option<[u8; 16]>, LedgerError> {
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
        let mut st = self
            .conn
            .prepare_cached("SELECT hash FROM people WHERE kind = ?1 AND identifier = ?2")
            .map_err(|e| io(&self.path)(e.to_string()))?;
        let got: Option<Vec<u8>> = st
            .query_row(params![id.kind.as_str(), id.value], |r| r.get(0))
            .optional()
            .map_err(|e| io(&self.path)(e.to_string()))?;
        Ok(got.and_then(|v| v.try_into().ok()))
    }
}

enum Msg {
    Acked(Vec<(IdKind, String, [u8; 16])>),
    Failed(Failure),
    Finish {
        summary: String,
        exit_code: u8,
        done: mpsc::Sender<Result<(), String>>,
    },
}

/// Sends acknowledgements to the ledger's thread, which commits them in transactions.
pub struct LedgerWriter {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl LedgerWriter {
    /// People the API acknowledged, with the hash of what it acknowledged.
    pub fn acked(&self, people: Vec<(IdKind, String, [u8; 16])>) {
        if !people.is_empty() {
            let _ = self.tx.send(Msg::Acked(people));
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
    path: &Path,
    on_error: impl Fn(String),
) {
    let mut broken = false;
    while let Ok(first) = rx.recv() {
        // Group commit: everything that arrived meanwhile goes in the same transaction.
        let mut batch = vec![first];
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        let mut finish = None;
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            {
                let mut up = tx.prepare_cached(
                    "INSERT INTO people (kind, identifier, hash, acked_at, run_id) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (kind, identifier) DO UPDATE SET hash = excluded.hash, acked_at = excluded.acked_at, run_id = excluded.run_id",
                )?;
                let mut fail = tx.prepare_cached(
                    "INSERT INTO failures (run_id, row, line, identifier, class, status, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                let t = now();
                for m in batch {
                    match m {
                        Msg::Acked(people) => {
                            for (kind, id, hash) in people {
                                up.execute(params![kind.as_str(), id, &hash[..], t, run_id])?;
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

/// What `cio-import state PATH` shows.
pub fn describe(path: &Path) -> Result<String, LedgerError> {
    if !path.exists() {
        return Err(io(path)("no such file".into()));
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| io(path)(e.to_string()))?;
    let q = |e: rusqlite::Error| io(path)(e.to_string());
    let mut out = String::new();
    let people: i64 = conn
        .query_row("SELECT count(*) FROM people", [], |r| r.get(0))
        .map_err(q)?;
    out.push_str(&format!(
        "{}: {people} people acknowledged\n\nlast runs:\n",
        path.display()
    ));
    let mut st = conn
        .prepare("SELECT id, started_at, ended_at, input, summary, exit_code FROM runs ORDER BY id DESC LIMIT 10")
        .map_err(q)?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i64>>(5)?,
            ))
        })
        .map_err(q)?;
    let mut last_run = None;
    for row in rows {
        let (id, start, end, input, summary, code) = row.map_err(q)?;
        last_run.get_or_insert(id);
        let counts = summary
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .map(|v| {
                let g = |k: &str| v[k].as_u64().unwrap_or(0);
                format!(
                    "rows {} sent {} skipped {} failed {}",
                    g("rows"),
                    g("sent"),
                    g("skipped"),
                    g("invalid") + g("rejected") + g("exhausted") + g("not_attempted")
                )
            })
            .unwrap_or_else(|| "did not finish (killed?)".into());
        let when = chrono::DateTime::from_timestamp(start, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default();
        let took = end
            .map(|e| format!("{}s", e - start))
            .unwrap_or_else(|| "-".into());
        let code = code.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "  #{id} {when} ({took}, exit {code}) {input}: {counts}\n"
        ));
    }
    if let Some(run) = last_run {
        let failed: i64 = conn
            .query_row(
                "SELECT count(*) FROM failures WHERE run_id = ?1",
                [run],
                |r| r.get(0),
            )
            .map_err(q)?;
        out.push_str(&format!("\nrows that failed in run #{run}: {failed}\n"));
        let mut st = conn
            .prepare("SELECT row, line, identifier, class, message FROM failures WHERE run_id = ?1 ORDER BY row LIMIT 20")
            .map_err(q)?;
        let rows = st
            .query_map([run], |r| {
                Ok(format!(
                    "  row {} (line {}) {} {}: {}",
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?
                ))
            })
            .map_err(q)?;
        for r in rows {
            out.push_str(&r.map_err(q)?);
            out.push('\n');
        }
    }
    Ok(out)
}
