//! Which rows `verify` checks, chosen in a first pass over the input (a file: it is read
//! twice, never held): for each person the last valid row that names them (the workspace holds
//! the last row's values), only people the last run recorded (`--state`), and out of those a
//! seeded random sample (`--sample N --seed S`). Memory: 24 bytes a person, not the rows.

use super::VerifyError;
use crate::config::ImportConfig;
use crate::source::Item;
use rand::SeedableRng;
use std::collections::{HashMap, HashSet};

/// The rows to check.
#[derive(Debug, Default)]
pub struct Selection {
    /// For each person (by [`crate::operation::Key::seen_hash`]), the row of their last valid
    /// row; people the last run did not record are left out.
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

/// The first pass. `recorded`: the people the last run recorded (`--state`); `sample`: how
/// many people to draw, and the seed.
pub fn select(
    cfg: &ImportConfig,
    recorded: Option<&HashSet<u128>>,
    sample: Option<(u64, u64)>,
) -> Result<Selection, VerifyError> {
    let (mut rows, converter) = crate::convert::prepass(cfg).map_err(VerifyError::Input)?;
    let mut last: HashMap<u128, u64> = HashMap::new();
    for item in rows.by_ref() {
        let item = item.map_err(|e| VerifyError::Input(e.to_string()))?;
        let Item::Row { pos, raw } = item else {
            continue;
        };
        let Ok(op) = converter.convert(pos, raw) else {
            continue;
        };
        let key = op.key().seen_hash();
        if recorded.is_some_and(|r| !r.contains(&key)) {
            continue;
        }
        last.insert(key, pos.row);
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
    Ok(Selection {
        last,
        sample,
        people,
    })
}
