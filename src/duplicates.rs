//! Duplicate people in a people file: the same person under two identifiers. When a file has
//! both an id column and an email column, two ids that carry the same email (compared without
//! case) look like one person twice; [`suggest_merges`] writes them as a merges file
//! (`primary_id,secondary_id`, the format `--kind merges` reads). Ids linked through several
//! emails (`1` and `2` share one, `2` and `3` another) are one person: they are merged into
//! one primary, the first of them in the file, so no merge depends on another (no primary was
//! a secondary before). An email carried by more than [`MAX_IDS_PER_EMAIL`] ids is likely a
//! placeholder (`noemail@example.com`): it links nobody, and is reported instead. The file is
//! read as the import reads it (`--encoding`, the delimiter); unreadable rows are counted.
//! Review the suggestions, then import them with `--kind merges --dry-run`, then `--yes`.

use crate::config::ImportConfig;
use crate::record::RawRow;
use crate::source::Item;
use std::collections::HashMap;

/// An email carried by more ids than this is likely a placeholder, not one person.
pub const MAX_IDS_PER_EMAIL: usize = 10;
use std::io::Write;
use std::path::Path;

/// What [`suggest_merges`] found and wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Suggestions {
    /// The email column compared.
    pub email_column: String,
    /// The id column.
    pub id_column: String,
    /// Emails carried by more than one id.
    pub emails: u64,
    /// Merges written (one per secondary id).
    pub merges: u64,
    /// Emails skipped as likely placeholders (carried by more than [`MAX_IDS_PER_EMAIL`]
    /// ids), in file order.
    pub placeholders: Vec<String>,
    /// Rows that could not be read (ragged, not in the encoding) and were skipped.
    pub unreadable: u64,
}

/// The email column of a header: `email`, or else the only column whose name contains
/// `email` (any case).
fn email_column(names: &[String]) -> Option<usize> {
    names
        .iter()
        .position(|n| n.eq_ignore_ascii_case("email"))
        .or_else(|| {
            let like: Vec<usize> = (0..names.len())
                .filter(|&i| names[i].to_ascii_lowercase().contains("email"))
                .collect();
            (like.len() == 1).then(|| like[0])
        })
}

/// A JSON line's member as text.
fn member(line: &[u8], name: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    match v.get(name)? {
        serde_json::Value::String(s) => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads the people file of `cfg` (its `--id-column`, which must hold ids) as the import
/// reads it, and writes the suggested merges to `out`, created owner-only (it names
/// customers). `Err` says why not.
pub fn suggest_merges(cfg: &ImportConfig, out: &Path) -> Result<Suggestions, String> {
    if cfg.convert.id_kind != crate::record::IdKind::Id {
        return Err(
            "--suggest-merges compares the emails of ids: identify the file by id (its id \
column with --id-column), not by email"
                .into(),
        );
    }
    let name = cfg.input.display();
    let (rows, converter) = crate::convert::prepass(cfg)?;
    let id_col = cfg.convert.id_column.clone();
    let header = rows.csv_header().map(|h| h.names.clone());
    let (email, email_index) = match &header {
        Some(names) => {
            if cfg.convert.mapping.is_none() && !names.contains(&id_col) {
                return Err(format!(
                    "{name} has no column '{id_col}': choose the id column with --id-column"
                ));
            }
            let e = email_column(names).ok_or_else(|| {
                format!(
                    "{name} has no email column: duplicates are found by the same email on two ids"
                )
            })?;
            (names[e].clone(), Some(e))
        }
        None => ("email".to_string(), None),
    };
    let mut s = Suggestions {
        email_column: email.clone(),
        id_column: id_col,
        ..Default::default()
    };
    // Ids by first appearance; each lower-cased email's ids (at most one past the cap).
    let mut ids: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut emails: Vec<(String, Vec<usize>)> = Vec::new();
    let mut email_at: HashMap<String, usize> = HashMap::new();
    for item in rows {
        let raw = match item.map_err(|e| e.to_string())? {
            Item::Row { raw, .. } => raw,
            Item::Bad { .. } => {
                s.unreadable += 1;
                continue;
            }
        };
        let mail = match &raw {
            RawRow::Csv(rec) => email_index
                .and_then(|i| rec.get(i))
                .map(|s| s.trim().to_string()),
            RawRow::Line(line) => member(line, &email),
            _ => None,
        };
        let Some(mail) = mail.filter(|m| !m.is_empty()) else {
            continue;
        };
        let Some(id) = converter
            .identifier_of(&raw)
            .map(|i| i.value)
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        let n = ids.len();
        let i = *index.entry(id.clone()).or_insert(n);
        if i == n {
            ids.push(id);
        }
        let key = mail.to_lowercase();
        let e = *email_at.entry(key).or_insert_with(|| {
            emails.push((mail, Vec::new()));
            emails.len() - 1
        });
        let carried = &mut emails[e].1;
        // Bounded: a placeholder keeps one id past the cap, so this stays constant-time.
        if carried.len() <= MAX_IDS_PER_EMAIL && !carried.contains(&i) {
            carried.push(i);
        }
    }
    // Ids linked by a shared email are one person (union-find; the root is the first id).
    let mut parent: Vec<usize> = (0..ids.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (mail, carried) in &emails {
        if carried.len() > MAX_IDS_PER_EMAIL {
            s.placeholders.push(mail.clone());
            continue;
        }
        if carried.len() < 2 {
            continue;
        }
        s.emails += 1;
        for &other in &carried[1..] {
            let (a, b) = (root(&mut parent, carried[0]), root(&mut parent, other));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let f = crate::report::create_private(out)
        .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(f));
    let io = |e: csv::Error| format!("cannot write {}: {e}", out.display());
    w.write_record(["primary_id", "secondary_id"]).map_err(io)?;
    let mut merges: Vec<(usize, usize)> = Vec::new();
    for i in 0..ids.len() {
        let r = root(&mut parent, i);
        if r != i {
            merges.push((r, i));
        }
    }
    merges.sort_unstable();
    for (primary, secondary) in merges {
        w.write_record([ids[primary].as_str(), ids[secondary].as_str()])
            .map_err(io)?;
        s.merges += 1;
    }
    let mut inner = w
        .into_inner()
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    inner
        .flush()
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(s)
}
