//! Feeds: which input sent a person, so that `--mirror` only removes people of its own feed.
//!
//! One state file may serve several inputs (a customers export and a leads export, say). The
//! ledger records, for each person, the feed that last sent them (`people.feed`): the one
//! whose run acknowledged them, was about to send them other values, or skipped them as
//! unchanged. A mirror run considers only the people of its feed and leaves the others alone
//! (it says how many).
//!
//! The feed is `--feed NAME` (`feed = "NAME"` in a job file), or else derived from the
//! input's file name so that dated exports stay one feed: the directory, every extension
//! (from the first `.`) and every digit are dropped, then runs of `-`, `_` and spaces become
//! one `-`, trimmed at both ends. `export-2026-11-30.csv`, `export-2026-12-01.csv` and
//! `export_20261201.csv.gz` are all `export`; stdin is `stdin` (a `--mirror` on stdin needs
//! `--feed`: every pipe would be one feed); a name of digits only is
//! `input`. Two inputs that differ only by digits (`users1.csv`, `users2.csv`) are one feed:
//! name them with `--feed` when they are not.
//!
//! People recorded before feeds existed have none: a run whose rows name them adopts them; a
//! mirror leaves the others alone (the safe failure: nobody removed).

use crate::source::Input;

/// The longest `--feed` name.
pub const MAX_FEED_BYTES: usize = 100;

/// A `--feed` that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// Empty or too long.
    #[error("--feed {0:?}: give a name of 1 to 100 bytes (e.g. --feed customers)")]
    Name(String),
}

/// Checks a `--feed` name.
pub fn parse(s: &str) -> Result<String, FeedError> {
    let t = s.trim();
    if t.is_empty() || t.len() > MAX_FEED_BYTES {
        return Err(FeedError::Name(s.into()));
    }
    Ok(t.to_string())
}

/// The feed of a run: `explicit` (`--feed`), or the one derived from `input`'s file name.
pub fn of(explicit: Option<&str>, input: &Input) -> String {
    if let Some(f) = explicit {
        return f.to_string();
    }
    match input {
        Input::Stdin => "stdin".into(),
        Input::Path(p) => derive(
            &p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
    }
}

/// The feed named by a file name (see the module doc).
pub fn derive(file_name: &str) -> String {
    let stem = file_name.split('.').next().unwrap_or("");
    let mut out = String::new();
    let mut sep = false;
    for c in stem.chars() {
        if c.is_ascii_digit() {
            continue;
        }
        if c == '-' || c == '_' || c.is_whitespace() {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.push(c);
    }
    if out.is_empty() {
        "input".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_exports_are_one_feed() {
        assert_eq!(derive("export-2026-11-30.csv"), "export");
        assert_eq!(derive("export-2026-12-01.csv"), "export");
        assert_eq!(derive("export_20261201.csv.gz"), "export");
        assert_eq!(derive("leads.csv"), "leads");
        assert_eq!(derive("crm users 2026-12-01T02.jsonl"), "crm-users-T");
        assert_eq!(derive("2026-12-01.csv"), "input");
        assert_eq!(of(None, &Input::Stdin), "stdin");
        assert_eq!(of(Some("crm"), &Input::Stdin), "crm");
        assert!(parse(" ").is_err());
    }
}
