//! What the user gets back: the rejects and errors files, the summary, the progress display.

pub mod errors;
pub mod notify;
pub mod progress;
pub mod rejects;
pub mod summary;

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Creates (or truncates) a file readable and writable by the owner only: it holds personal data.
pub fn create_private(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let f = opts.open(path)?;
        // An existing file keeps its old mode through open(): narrow it (regular files only:
        // never chmod a device such as /dev/null).
        if f.metadata()?.is_file() {
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(f)
    }
    #[cfg(not(unix))]
    {
        opts.open(path)
    }
}

/// Makes a report durable: fsync for a regular file; nothing for a pipe or a device, which
/// have nothing to sync (and refuse it: EINVAL on a named pipe).
pub fn sync_file(f: &File) -> io::Result<()> {
    if f.metadata()?.is_file() {
        f.sync_all()
    } else {
        Ok(())
    }
}

/// Clears what an earlier run left at a report path, so that after this run the path holds this
/// run's failures or nothing: a regular file is removed (no file = nothing failed, as when the
/// path was never used); a symbolic link is kept and the regular file it points to emptied;
/// devices, pipes and folders (`/dev/null`) are never touched. A missing path is fine.
pub fn clear_stale(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => std::fs::remove_file(path),
        Ok(m) if m.file_type().is_symlink() => match std::fs::metadata(path) {
            Ok(t) if t.is_file() => OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(path)
                .map(drop),
            _ => Ok(()),
        },
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Checks, before anything is read or sent, that a report can be written at `path`: an
/// earlier run's file there can be cleared, and the folder takes a new file. A run that could
/// only find out at its first failed row would stop half-way; this one stops before it starts.
pub fn check_writable(path: &Path) -> Result<(), ReportError> {
    clear_stale(path).map_err(ReportError::at(path))?;
    match std::fs::metadata(path) {
        // A link to a regular file (emptied above): opened for writing as it will be.
        Ok(m) if m.is_file() => {
            return OpenOptions::new()
                .write(true)
                .open(path)
                .map(drop)
                .map_err(ReportError::at(path));
        }
        // A device or a named pipe: never opened here (closing a pipe's only writer would
        // end its reader, and opening one without a reader blocks).
        Ok(_) => return Ok(()),
        Err(_) => {}
    }
    let folder = match path.parent() {
        Some(f) if !f.as_os_str().is_empty() => f,
        _ => Path::new("."),
    };
    let probe = folder.join(format!(".cio-import-probe-{}", std::process::id()));
    let created = OpenOptions::new().write(true).create_new(true).open(&probe);
    match created {
        Ok(f) => {
            drop(f);
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(ReportError::at(path)(e)),
    }
}

/// A report file could not be written (disk full, permissions): the run must stop.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}; free some space or choose another path, then re-run")]
pub struct ReportError {
    /// The file concerned.
    pub path: String,
    /// The I/O error.
    #[source]
    pub source: io::Error,
}

impl ReportError {
    pub(crate) fn at(path: &Path) -> impl FnOnce(io::Error) -> ReportError + '_ {
        move |source| ReportError {
            path: path.display().to_string(),
            source,
        }
    }
}
