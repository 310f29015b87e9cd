//! Guards for a sync nobody watches: an empty or header-only input fails unless
//! `--allow-empty`; `--min-rows N` fails a shorter one; `--max-change PCT` (with `--state`)
//! stops when more than PCT% of the people the ledger knows for this workspace would change or
//! vanish. A guard that trips ends the run with exit code 2 ([`crate::exit::GUARD`]) and says
//! what the numbers were.
//!
//! When each is checked:
//! - on a regular file, `--min-rows` and `--max-change` are checked by a pre-pass
//!   ([`crate::preview::diff`]) before anything is sent;
//! - `--max-change` needs that pre-pass, so it refuses an input that cannot be read twice
//!   (stdin, a named pipe), as `--action delete` does: counting the changes of a pipe would
//!   consume it;
//! - the empty and `--min-rows` checks are made again once the input has been read (for
//!   stdin, that is the only check: rows already sent stay sent, but the run fails and no
//!   mirror removal is made).

use crate::mirror::MirrorSettings;

/// The nightly settings of a run: guards and mirror.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Nightly {
    /// `--allow-empty`: an input without rows is not a failure.
    pub allow_empty: bool,
    /// `--min-rows N`: fewer rows is a failure.
    pub min_rows: Option<u64>,
    /// `--max-change PCT`: more than PCT% of the known people changed or vanished stops the run.
    pub max_change: Option<f64>,
    /// `--mirror`: what happens to people absent from the export.
    pub mirror: Option<MirrorSettings>,
    /// `--feed NAME`: the input's feed ([`crate::feed`]); derived from the file name if unset.
    pub feed: Option<String>,
}

/// A guard that tripped; the message gives the numbers and the way out.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GuardError {
    /// No rows.
    #[error("{input} has no rows (empty, or a header only): nothing to sync, and a nightly export should never be empty; if it may be, add --allow-empty")]
    Empty {
        /// The input.
        input: String,
    },
    /// Fewer rows than `--min-rows`.
    #[error("{input} has {rows} rows, fewer than --min-rows {min}: the export looks cut short; check it, or lower --min-rows")]
    TooFewRows {
        /// The input.
        input: String,
        /// Rows read.
        rows: u64,
        /// `--min-rows`.
        min: u64,
    },
    /// More changes than `--max-change`.
    #[error("{input}: {changed} of the {known} people the state file knows for this workspace would change and {vanished} vanish ({pct:.1}%), more than --max-change {max}%: nothing was sent; check the export (see --dry-run), or raise --max-change")]
    TooManyChanges {
        /// The input.
        input: String,
        /// Known people whose values differ.
        changed: u64,
        /// Known people no row names.
        vanished: u64,
        /// People known.
        known: u64,
        /// `(changed + vanished) / known`, in percent.
        pct: f64,
        /// `--max-change`.
        max: f64,
    },
}

impl Nightly {
    /// The checks on the number of rows read.
    pub fn check_rows(&self, input: &str, rows: u64) -> Result<(), GuardError> {
        if rows == 0 && !self.allow_empty {
            return Err(GuardError::Empty {
                input: input.into(),
            });
        }
        match self.min_rows {
            Some(min) if rows < min => Err(GuardError::TooFewRows {
                input: input.into(),
                rows,
                min,
            }),
            _ => Ok(()),
        }
    }

    /// `--max-change`: `changed` and `vanished` of the `known` people.
    pub fn check_change(
        &self,
        input: &str,
        changed: u64,
        vanished: u64,
        known: u64,
    ) -> Result<(), GuardError> {
        let Some(max) = self.max_change else {
            return Ok(());
        };
        if known == 0 {
            return Ok(());
        }
        let pct = (changed + vanished) as f64 * 100.0 / known as f64;
        if pct > max {
            return Err(GuardError::TooManyChanges {
                input: input.into(),
                changed,
                vanished,
                known,
                pct,
                max,
            });
        }
        Ok(())
    }
}

/// Whether `input` is a regular file of zero bytes (no header to open: an empty input).
pub fn empty_file(input: &crate::source::Input) -> bool {
    match input {
        crate::source::Input::Path(p) => {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() == 0)
        }
        crate::source::Input::Stdin => false,
    }
}

/// Whether the guards and mirror settings fit the rest of `cfg`: `--max-change` and
/// `--mirror` need `--state`; `--mirror` needs people identified (not `--action`, not
/// `--kind events`) by one identifier column (a mapping's fallback column would let a person
/// known by one kind look absent under the other); `--max-change` is a percentage.
pub fn check_settings(cfg: &crate::config::ImportConfig) -> Result<(), String> {
    let n = &cfg.nightly;
    if let Some(p) = n.max_change {
        if !(0.0..=100.0).contains(&p) {
            return Err(format!(
                "--max-change {p}: give a percentage between 0 and 100 (e.g. --max-change 10)"
            ));
        }
        if cfg.state.is_none() {
            return Err("--max-change compares the export with the people a --state file knows: add --state FILE".into());
        }
        if let Some(kind) = crate::convert::object::kind_other_than_people(&cfg.convert) {
            return Err(format!("--max-change compares an export of people with the people a --state file knows: it cannot go with --kind {kind} (drop --max-change)"));
        }
    }
    if let Some(m) = &n.mirror {
        let mode = m.mode.name();
        if cfg.state.is_none() {
            return Err(format!("--mirror {mode} removes the people a --state file knows who are absent from the export: add --state FILE"));
        }
        if cfg.convert.action != crate::operation::Action::Identify
            || cfg.convert.event.is_some()
            || cfg.convert.object.is_some()
        {
            use crate::operation::Action;
            let object_kind = cfg
                .convert
                .object
                .as_ref()
                .map(|o| crate::convert::ObjectOptions::kind_str(o.kind));
            let what = match (object_kind, cfg.convert.action) {
                (Some(kind), _) => format!("--kind {kind}"),
                (None, action) => match action {
                    Action::AddDevice | Action::DeleteDevice => "--kind devices".to_string(),
                    Action::Merge => "--kind merges".to_string(),
                    Action::Event => "--kind events".to_string(),
                    Action::Identify => "--kind events".to_string(),
                    other => format!("--action {}", other.as_str()),
                },
            };
            return Err(format!(
                "--mirror {mode} removes people absent from an export of people (identify rows, --kind people): it cannot go with {what}; run the mirror on the people export, and this one without --mirror"
            ));
        }
        // Every piped input would otherwise be the one feed `stdin`: two cron jobs piping
        // different exports into one state file would remove each other's people.
        if matches!(cfg.input, crate::source::Input::Stdin) && n.feed.is_none() {
            return Err(format!("--mirror {mode} on standard input needs --feed NAME (e.g. --feed customers): every piped input would otherwise be the one feed \"stdin\", and a mirror would remove the people another piped export sent"));
        }
        if cfg
            .convert
            .mapping
            .as_ref()
            .is_some_and(|m| m.fallback.is_some())
        {
            return Err(format!("--mirror {mode}: the mapping has a fallback identifier column, so a person may be named by either kind and look absent under the other: mirror an export with one identifier column"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_input_fails_unless_allowed_and_min_rows_holds() {
        let n = Nightly::default();
        assert!(matches!(
            n.check_rows("x", 0),
            Err(GuardError::Empty { .. })
        ));
        assert!(n.check_rows("x", 1).is_ok());
        let allow = Nightly {
            allow_empty: true,
            ..Nightly::default()
        };
        assert!(allow.check_rows("x", 0).is_ok());
        let min = Nightly {
            min_rows: Some(10),
            ..Nightly::default()
        };
        let e = min.check_rows("x.csv", 9).unwrap_err().to_string();
        assert!(e.contains("9 rows") && e.contains("--min-rows 10"), "{e}");
        assert!(min.check_rows("x", 10).is_ok());
    }

    #[test]
    fn max_change_counts_changed_and_vanished_of_the_known() {
        let n = Nightly {
            max_change: Some(10.0),
            ..Nightly::default()
        };
        assert!(n.check_change("x", 5, 5, 100).is_ok());
        let e = n.check_change("x", 0, 30, 100).unwrap_err().to_string();
        assert!(e.contains("30 vanish") && e.contains("(30.0%)"), "{e}");
        assert!(n.check_change("x", 50, 50, 0).is_ok());
    }
}
