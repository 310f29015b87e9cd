//! `inspect --kind objects|relationships`: what an import would send, row by row, without
//! sending anything: how many rows convert, how many distinct objects (or relationships and
//! people) they name, the first invalid rows with their line and reason, and the first
//! operation as it would travel.

use crate::config::ImportConfig;
use crate::operation::Entity;
use crate::source::Item;
use std::collections::HashSet;

/// How many invalid rows are named.
const SHOWN: usize = 5;

/// What a pass over an objects or relationships file found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Survey {
    /// Rows read.
    pub rows: u64,
    /// Rows that convert into an operation.
    pub valid: u64,
    /// Distinct objects named by the valid rows.
    pub objects: u64,
    /// Distinct people named (relationships only).
    pub people: u64,
    /// Distinct relationships (relationships only).
    pub relationships: u64,
    /// The first invalid rows: `line N: message`.
    pub invalid: Vec<String>,
    /// How many rows are invalid.
    pub invalid_count: u64,
    /// The first operation as it would be sent (its v2 JSON).
    pub first: Option<String>,
}

impl Survey {
    /// The lines `inspect` prints.
    pub fn lines(&self, kind: &str) -> Vec<String> {
        let mut out = vec![match kind {
            "relationships" => format!(
                "relationships: {} of {} rows convert: {} relationships between {} people and {} objects",
                self.valid, self.rows, self.relationships, self.people, self.objects
            ),
            _ => format!(
                "objects: {} of {} rows convert: {} distinct objects",
                self.valid, self.rows, self.objects
            ),
        }];
        if self.invalid_count > 0 {
            out.push(format!("  {} invalid rows, the first:", self.invalid_count));
            out.extend(self.invalid.iter().map(|l| format!("    {l}")));
        }
        if let Some(op) = &self.first {
            out.push(format!("  first operation: {op}"));
        }
        out
    }
}

/// Reads the input once and converts every row as the import would.
pub fn survey(cfg: &ImportConfig) -> Result<Survey, String> {
    let (rows, converter) = crate::convert::prepass(cfg)?;
    let mut s = Survey::default();
    let (mut objects, mut people, mut pairs) = (HashSet::new(), HashSet::new(), HashSet::new());
    for item in rows {
        let item = item.map_err(|e| e.to_string())?;
        s.rows += 1;
        let (pos, raw) = match item {
            Item::Bad { pos, message, .. } => {
                s.invalid_count += 1;
                if s.invalid.len() < SHOWN {
                    s.invalid.push(format!("line {}: {message}", pos.line));
                }
                continue;
            }
            Item::Row { pos, raw } => (pos, raw),
        };
        match converter.convert(pos, raw) {
            Ok(op) => {
                s.valid += 1;
                if let Some(o) = op.object.as_deref() {
                    objects.insert(o.clone());
                    if op.entity == Entity::Person {
                        people.insert(op.identifier.clone());
                        pairs.insert(op.key().seen_hash());
                    }
                }
                if s.first.is_none() {
                    s.first = Some(String::from_utf8_lossy(&op.payload).into_owned());
                }
            }
            Err((inv, _)) => {
                s.invalid_count += 1;
                if s.invalid.len() < SHOWN {
                    s.invalid
                        .push(format!("line {}: {}", pos.line, inv.message()));
                }
            }
        }
    }
    s.objects = objects.len() as u64;
    s.people = people.len() as u64;
    s.relationships = pairs.len() as u64;
    Ok(s)
}
