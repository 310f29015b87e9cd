//! People with several rows in one file, under `--state` (issue 14): an unchanged file whose
//! people repeat sends nothing on the next night.
//!
//! Rows are sent as they are, one operation per row in file order (nothing is coalesced: the
//! rejects file gives back the user's own rows and every error names its own row and line).
//! Only what the ledger records and when a night may skip changes:
//!
//! - **What is recorded.** For a person with `n >= 2` valid rows in the file, the ledger
//!   records the *chain hash* of their rows' attribute hashes in file order
//!   ([`chain_start`], [`chain_next`]) with `rows = n`, instead of one row's hash. It does so
//!   only once every one of those `n` rows was acknowledged by an answer that proves
//!   delivery (not update-only, not someone who may be suppressed): the engine's outcome
//!   stage counts them. Applying the same rows again in the same order leaves a person as
//!   they are (each row sets its attributes, later ones override), so the chain proves the
//!   person holds what the rows give.
//! - **When a night skips.** At a grouped person's first valid row, the reader compares the
//!   ledger's hash with the chain the pre-pass computed for this file: equal (and no
//!   `--full`), every row of theirs is skipped, each counted once as skipped; otherwise every
//!   row of theirs is sent, in order, the ledger's record of them forgotten (durably) before
//!   the first one goes, and nothing recorded for them until all `n` are acknowledged.
//! - **A failure in the group.** If the first row is acknowledged and the second fails (or
//!   its outcome is unknown, or the run is killed), the ledger holds nothing for that person,
//!   so the next night sends all their rows again. A row that fails validation is not part of
//!   the group (it is never sent, both nights alike) and costs only itself.
//! - **Knowing who repeats.** A pre-pass reads a rereadable input
//!   ([`crate::source::Input::rereadable`]) before the run, twice when needed: first the
//!   identifiers only (no payload is built), remembering who was seen in a fixed 12 MiB Bloom
//!   filter ([`SeenFilter`]) and who was seen again in a hash set; then, only if someone
//!   repeats, the rows of those people are converted and their chains folded, 16 bytes of
//!   state per person. Memory is the filter (freed before the run reads) plus about 75 bytes
//!   per repeated person in the reader (and 40 in the outcome stage while their rows are in
//!   flight), capped at [`MAX_GROUPS`] people (about 150 MiB); people beyond the cap, and a
//!   Bloom false positive's person with a single row, keep the per-row behaviour, which is
//!   correct but re-sends duplicates.
//! - **Stdin and pipes** cannot be read twice: their duplicates keep the per-row behaviour
//!   (the earlier rows of a repeated person differ from the last row's recorded hash, so they
//!   go every night, and so do their later rows); the run says so once.
//! - **The input changing under the run.** The reader folds the chain again as it reads; if
//!   a group's chain differs from the pre-pass's, or the person has more rows than it found,
//!   it warns and records nothing for that person in this run. If it skipped them, the
//!   ledger's chain is still true of the workspace, and the next night's pre-pass, seeing
//!   other rows, sends them.
//!
//! Events (keyed by event id), deletions and suppressions, and dry runs are unaffected.

use crate::config::ImportConfig;
use crate::operation::{Action, Entity, Key};
use crate::seen::SeenFilter;
use crate::source::Item;
use crate::stop::Stop;
use std::collections::HashMap;

/// The most people with several rows a run tracks; further ones keep the per-row behaviour.
pub const MAX_GROUPS: usize = 2_000_000;

/// Rows between two checks for Ctrl-C in the pre-pass.
const STOP_CHECK_ROWS: u64 = 4096;

/// The chain of no rows: a tag no attribute hash is computed from.
pub fn chain_start() -> [u8; 16] {
    xxhash_rust::xxh3::xxh3_128(b"cio-import: rows of one person in file order, v1").to_le_bytes()
}

/// The chain after one more row whose attribute hash is `row`.
pub fn chain_next(chain: [u8; 16], row: [u8; 16]) -> [u8; 16] {
    let mut buf = [0u8; 32];
    buf[..16].copy_from_slice(&chain);
    buf[16..].copy_from_slice(&row);
    xxhash_rust::xxh3::xxh3_128(&buf).to_le_bytes()
}

/// The chain of `rows` (attribute hashes in file order): what the ledger records for a
/// person with several rows once all of them are acknowledged.
pub fn chain(rows: impl IntoIterator<Item = [u8; 16]>) -> [u8; 16] {
    rows.into_iter().fold(chain_start(), chain_next)
}

/// How a grouped person is handled in this run, decided at their first row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Their first row has not been read yet.
    Unread,
    /// The ledger holds their chain: every row of theirs is skipped.
    Skip,
    /// Every row of theirs is sent.
    Send,
}

/// One person with several rows: what the pre-pass found, and the main pass's progress.
#[derive(Clone, Debug)]
pub struct Group {
    /// Valid rows of theirs in the file.
    pub rows: u32,
    /// The chain of those rows, from the pre-pass.
    pub chain: [u8; 16],
    /// Rows of theirs the main pass has read so far.
    pub read: u32,
    /// The chain of the rows read so far (checked against `chain` at the last one).
    pub running: [u8; 16],
    /// Skip or send, decided at the first row.
    pub mode: Mode,
}

/// The people with several rows in the input, by [`Key::seen_hash`].
#[derive(Debug, Default)]
pub struct Groups {
    map: HashMap<u128, Group>,
}

impl Groups {
    /// The group of the person keyed `key`, while their rows are being read.
    pub fn get_mut(&mut self, key: u128) -> Option<&mut Group> {
        self.map.get_mut(&key)
    }

    /// The group of the person keyed `key` (read-only: the preview's comparison).
    pub fn get(&self, key: u128) -> Option<&Group> {
        self.map.get(&key)
    }

    /// How many people have several rows.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nobody has several rows.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Why the pre-pass stopped the run before it started.
#[derive(Debug, thiserror::Error)]
pub enum GroupsError {
    /// Ctrl-C or SIGTERM during the pre-pass.
    #[error("interrupted while reading the input for people with several rows (nothing was sent)")]
    Interrupted,
}

/// Whether a run gets the pre-pass: an identify run with `--state` that sends (not a dry
/// run), from an input that can be read twice.
pub fn applies(cfg: &ImportConfig) -> bool {
    cfg.state.is_some()
        && !cfg.dry_run
        && cfg.convert.event.is_none()
        && cfg.convert.object.is_none()
        && cfg.convert.action == Action::Identify
        && cfg.input.rereadable()
}

/// Reads the input (once, or twice when someone repeats) and returns the people with
/// several valid rows, with their rows' chain. `Ok(None)` when nobody repeats, or when the
/// input cannot be read to its end (the run then reports that at its row and keeps the
/// per-row behaviour).
pub fn prepass(cfg: &ImportConfig, stop: &Stop) -> Result<Option<Groups>, GroupsError> {
    let mut cfg = cfg.clone();
    cfg.convert.hash = true;
    let name = cfg.input.display();
    let read_failed = |e: String| {
        tracing::warn!(
            "{name}: the pre-pass for people with several rows stopped ({e}); their rows are \
sent as they are"
        );
    };
    // 1. Who repeats: identifiers only.
    let (rows, converter) = match crate::convert::prepass(&cfg) {
        Ok(x) => x,
        Err(e) => {
            read_failed(e);
            return Ok(None);
        }
    };
    let mut once = SeenFilter::new();
    let mut map: HashMap<u128, Group> = HashMap::new();
    let mut full = false;
    let mut n = 0u64;
    for item in rows {
        n += 1;
        if n.is_multiple_of(STOP_CHECK_ROWS) && stop.reading_should_stop() {
            return Err(GroupsError::Interrupted);
        }
        let raw = match item {
            Ok(Item::Row { raw, .. }) => raw,
            Ok(Item::Bad { .. }) => continue,
            Err(e) => {
                read_failed(e.to_string());
                return Ok(None);
            }
        };
        let Some(id) = converter.identifier_of(&raw) else {
            continue;
        };
        let key = Key::Entity(Entity::Person, &id).seen_hash();
        if !once.may_contain(key) {
            once.insert(key);
        } else if map.len() < MAX_GROUPS {
            map.entry(key).or_insert(Group {
                rows: 0,
                chain: chain_start(),
                read: 0,
                running: chain_start(),
                mode: Mode::Unread,
            });
        } else {
            full = true;
        }
    }
    drop(once);
    if map.is_empty() {
        return Ok(None);
    }
    if full {
        tracing::warn!(
            "{name}: more than {MAX_GROUPS} people have several rows; the others' rows are \
sent every night"
        );
    }
    // 2. Their rows' chains, in file order.
    let (rows, converter) = match crate::convert::prepass(&cfg) {
        Ok(x) => x,
        Err(e) => {
            read_failed(e);
            return Ok(None);
        }
    };
    let mut n = 0u64;
    for item in rows {
        n += 1;
        if n.is_multiple_of(STOP_CHECK_ROWS) && stop.reading_should_stop() {
            return Err(GroupsError::Interrupted);
        }
        let (pos, raw) = match item {
            Ok(Item::Row { pos, raw }) => (pos, raw),
            Ok(Item::Bad { .. }) => continue,
            Err(e) => {
                read_failed(e.to_string());
                return Ok(None);
            }
        };
        let Some(id) = converter.identifier_of(&raw) else {
            continue;
        };
        let key = Key::Entity(Entity::Person, &id).seen_hash();
        let Some(g) = map.get_mut(&key) else {
            continue;
        };
        let Ok(op) = converter.convert(pos, raw) else {
            continue;
        };
        let (Some(h), true) = (op.hash, op.key().seen_hash() == key) else {
            continue;
        };
        g.rows += 1;
        g.chain = chain_next(g.chain, h);
    }
    // A Bloom false positive, or someone whose other rows are invalid: a single row.
    map.retain(|_, g| g.rows >= 2);
    map.shrink_to_fit();
    Ok((!map.is_empty()).then_some(Groups { map }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_depends_on_every_row_and_their_order() {
        let (a, b) = ([1u8; 16], [2u8; 16]);
        assert_eq!(chain([a, b]), chain_next(chain_next(chain_start(), a), b));
        assert_ne!(chain([a, b]), chain([b, a]));
        assert_ne!(chain([a, b]), chain([a, b, b]));
        assert_ne!(chain([a]), a);
        assert_ne!(chain([a, b]), b);
    }
}
