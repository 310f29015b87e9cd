//! Duplicate people in a people file: the same person under two identifiers. When a file has
//! both an id column and an email column, two ids that carry the same email (compared without
//! case) look like one person twice; [`suggest_merges`] writes them as a merges file
//! (`primary_id,secondary_id`, the format `--kind merges` reads), the first id of an email the
//! primary and every later one a secondary, so no merge depends on another. Review it, then
//! import it with `--kind merges --dry-run`, then `--yes`.

use crate::config::ImportConfig;
use crate::record::RawRow;
use crate::source::{Item, Rows};
use std::collections::HashMap;
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

/// Reads the people file of `cfg` (its `--id-column`, which must hold ids) and writes the
/// suggested merges to `out`, created owner-only (it names customers). `Err` says why not.
pub fn suggest_merges(cfg: &ImportConfig, out: &Path) -> Result<Suggestions, String> {
    if cfg.convert.id_kind != crate::record::IdKind::Id {
        return Err(
            "--suggest-merges compares the emails of ids: identify the file by id (its id \
column with --id-column), not by email"
                .into(),
        );
    }
    let name = cfg.input.display();
    let opened = crate::source::open(&cfg.input).map_err(|e| e.to_string())?;
    let rows = Rows::new(opened, cfg.format, cfg.delimiter, &name).map_err(|e| e.to_string())?;
    let id_col = cfg.convert.id_column.clone();
    let (id_index, email) = match rows.csv_header() {
        Some(h) => {
            let id = h.names.iter().position(|n| *n == id_col).ok_or_else(|| {
                format!("{name} has no column '{id_col}': choose the id column with --id-column")
            })?;
            let e = email_column(&h.names).ok_or_else(|| {
                format!(
                    "{name} has no email column: duplicates are found by the same email on two ids"
                )
            })?;
            (Some(id), h.names[e].clone())
        }
        None => (None, "email".to_string()),
    };
    let email_index = rows
        .csv_header()
        .and_then(|h| h.names.iter().position(|n| *n == email));
    // Lower-cased email -> the first id that carried it, and the later ids.
    let mut seen: HashMap<String, (String, Vec<String>)> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for item in rows {
        let Item::Row { raw, .. } = item.map_err(|e| e.to_string())? else {
            continue;
        };
        let (id, mail) = match &raw {
            RawRow::Csv(rec) => (
                id_index
                    .and_then(|i| rec.get(i))
                    .map(|s| s.trim().to_string()),
                email_index
                    .and_then(|i| rec.get(i))
                    .map(|s| s.trim().to_string()),
            ),
            RawRow::Line(line) => (member(line, &id_col), member(line, &email)),
            _ => (None, None),
        };
        let (Some(id), Some(mail)) = (id, mail) else {
            continue;
        };
        if id.is_empty() || mail.is_empty() {
            continue;
        }
        let key = mail.to_lowercase();
        match seen.get_mut(&key) {
            None => {
                order.push(key.clone());
                seen.insert(key, (id, Vec::new()));
            }
            Some((first, later)) => {
                if *first != id && !later.contains(&id) {
                    later.push(id);
                }
            }
        }
    }
    let f = crate::report::create_private(out)
        .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(f));
    let io = |e: csv::Error| format!("cannot write {}: {e}", out.display());
    w.write_record(["primary_id", "secondary_id"]).map_err(io)?;
    let mut s = Suggestions {
        email_column: email,
        id_column: id_col,
        ..Default::default()
    };
    for key in order {
        let (first, later) = &seen[&key];
        if later.is_empty() {
            continue;
        }
        s.emails += 1;
        for id in later {
            w.write_record([first.as_str(), id.as_str()]).map_err(io)?;
            s.merges += 1;
        }
    }
    let mut inner = w
        .into_inner()
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    inner
        .flush()
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(s)
}
