//! Which rows `verify` checks, chosen in a first pass over the input (a file: it is read
//! twice, never held): for each person the last valid row that names them (the workspace holds
//! the last row's values), only people the last run recorded (`--state`), and out of those a
//! seeded random sample (`--sample N --seed S`). Memory: 24 bytes a person, not the rows.
//!
//! A row is valid exactly when `import` would send it: it is converted for the import's
//! `--api` (a batch operation over 32,000 bytes is invalid there, not under v1) and, when that
//! passes, once more as a v1 body, whose attributes are the values compared ([`Rows`]).
//! A person is keyed as Customer.io keys them ([`person_key`]): an email without regard to
//! case, so `Ann@x.io` and `ann@x.io` are one person and the later row is the one checked.

use super::VerifyError;
use crate::config::ImportConfig;
use crate::convert::Converter;
use crate::operation::Operation;
use crate::record::{IdKind, Position, RawRow};
use crate::source::{CsvHeader, Item, TextEncoding};
use crate::stop::Stop;
use crate::track::Api;
use rand::SeedableRng;
use std::collections::{HashMap, HashSet};

/// The rows to check.
#[derive(Debug, Default)]
pub struct Selection {
    /// For each person (by [`person_key`]), the row of their last valid row; people the last
    /// run did not record are left out.
    last: HashMap<u128, u64>,
    /// The sampled rows; `None`: every person's last row.
    sample: Option<HashSet<u64>>,
    /// People the selection holds (before sampling).
    pub people: u64,
}

impl Selection {
    /// Whether the row `row` of the person `key` is one to check.
    pub fn checks(&self, key: u128, row: u64) -> bool {
        self.last.get(&key) == Some(&row) && self.sample.as_ref().is_none_or(|s| s.contains(&row))
    }

    /// Whether `row` is the last row of `key` (chosen or not).
    pub fn is_last(&self, key: u128, row: u64) -> bool {
        self.last.get(&key) == Some(&row)
    }
}

/// Who a row addresses, as the workspace tells people apart: an email without regard to case
/// (Customer.io treats `email` case-insensitively), an id or cio_id exactly.
pub fn person_key(op: &Operation) -> u128 {
    match op.identifier.kind {
        IdKind::Email => xxhash_rust::xxh3::xxh3_128_with_seed(
            op.identifier.value.to_lowercase().as_bytes(),
            IdKind::Email as u64,
        ),
        _ => op.key().seen_hash(),
    }
}

/// The input opened for one pass, with the converters that decide, as `import` would, which
/// rows are valid and what they send.
pub struct Rows {
    /// The rows.
    pub rows: crate::source::Rows,
    /// The CSV header (None for JSONL).
    pub header: Option<CsvHeader>,
    /// The input's text encoding (the differing rows are written in it).
    pub encoding: TextEncoding,
    /// The import's own converter (its `--api`), when it is not the v1 one.
    validator: Option<Converter>,
    /// The v1 converter: the attributes object, as compared.
    converter: Converter,
}

impl Rows {
    /// Opens `cfg`'s input (a regular file) and builds the converters; stops waiting for the
    /// file when `stop` is set.
    pub fn open(cfg: &ImportConfig, stop: &Stop) -> Result<Rows, VerifyError> {
        let name = cfg.input.display();
        let source = crate::source::open_rows(&cfg.input, Some(stop), &cfg.dialect())
            .map_err(|e| VerifyError::Input(e.to_string()))?;
        let header = source.rows.csv_header().cloned();
        let names = header.as_ref().map(|h| h.names.clone());
        let make = |api: Api| {
            let mut opts = cfg.convert.clone();
            opts.api = api;
            opts.hash = false;
            Converter::new(opts, names.as_deref())
                .map_err(|m| VerifyError::Input(format!("{name}: {m}")))
        };
        let validator = match cfg.convert.api {
            Api::V1 => None,
            api => Some(make(api)?),
        };
        Ok(Rows {
            rows: source.rows,
            header,
            encoding: source.encoding,
            validator,
            converter: make(Api::V1)?,
        })
    }

    /// The row as `import` would send it, with its v1 attributes; `None`: `import` reports it
    /// as invalid.
    pub fn convert(&self, pos: Position, raw: RawRow) -> Option<Operation> {
        let raw = match &self.validator {
            Some(v) => v.convert(pos, raw).ok()?.raw,
            None => raw,
        };
        self.converter.convert(pos, raw).ok()
    }
}

/// The first pass. `recorded`: the people the last run recorded (`--state`); `sample`: how
/// many people to draw, and the seed. `Ok(None)`: `stop` was set while reading.
pub fn select(
    cfg: &ImportConfig,
    recorded: Option<&HashSet<u128>>,
    sample: Option<(u64, u64)>,
    stop: &Stop,
) -> Result<Option<Selection>, VerifyError> {
    let mut input = Rows::open(cfg, stop)?;
    let mut last: HashMap<u128, u64> = HashMap::new();
    while let Some(item) = input.rows.next() {
        if stop.is_stopped() {
            return Ok(None);
        }
        let item = item.map_err(|e| VerifyError::Input(e.to_string()))?;
        let Item::Row { pos, raw } = item else {
            continue;
        };
        let Some(op) = input.convert(pos, raw) else {
            continue;
        };
        if recorded.is_some_and(|r| !r.contains(&op.key().seen_hash())) {
            continue;
        }
        last.insert(person_key(&op), pos.row);
    }
    if stop.is_stopped() {
        return Ok(None);
    }
    let people = last.len() as u64;
    let sample = sample.map(|(n, seed)| {
        let mut candidates: Vec<u64> = last.values().copied().collect();
        candidates.sort_unstable();
        let n = (n as usize).min(candidates.len());
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        rand::seq::index::sample(&mut rng, candidates.len(), n)
            .into_iter()
            .map(|i| candidates[i])
            .collect()
    });
    Ok(Some(Selection {
        last,
        sample,
        people,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Input;

    /// Red-team finding: Ctrl-C was not looked at while the first pass read the file (a large
    /// file kept reading for minutes). A stop ends the pass at the next row.
    #[test]
    fn the_first_pass_stops_when_the_run_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        std::fs::write(&path, "id,plan\nu1,a\nu2,b\n").unwrap();
        let cfg = ImportConfig::builder(Input::Path(path))
            .dry_run(true)
            .build()
            .unwrap();
        let stop = Stop::new();
        let all = select(&cfg, None, None, &stop)
            .unwrap()
            .expect("not stopped");
        assert_eq!(all.people, 2);
        stop.interrupt();
        assert!(select(&cfg, None, None, &stop).unwrap().is_none());
    }
}
