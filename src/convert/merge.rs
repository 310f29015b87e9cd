//! Merges (`--kind merges`): one row is one pair of people, the secondary merged into the
//! primary (who remains; the secondary is deleted; irreversible). The file names each side
//! by its own identifier kind: exactly one of the columns `primary_id`, `primary_email`,
//! `primary_cio_id`, and exactly one of `secondary_id`, `secondary_email`,
//! `secondary_cio_id` (the format `inspect --suggest-merges` writes). A pair whose two sides
//! are the same person (same kind and value; emails compared without case) is invalid at its
//! line.

use super::{invalid, parse_object, Converter, Invalid};
use crate::json_object;
use crate::operation::{Action, Entity, Operation, Target};
use crate::record::{IdKind, Identifier, Position, RawRow};
use crate::track::merge::merge_payload;
use crate::validate;

/// The two sides of a pair, as their column prefixes.
pub const SIDES: [&str; 2] = ["primary", "secondary"];

/// The identifier kinds a side may use, in column-name order.
const KINDS: [IdKind; 3] = [IdKind::Id, IdKind::Email, IdKind::CioId];

/// The column of `side` for `kind`: `primary_id`, `secondary_email`, ...
pub fn column(side: &str, kind: IdKind) -> String {
    format!("{side}_{}", kind.as_str())
}

/// Which column holds each side, from a CSV header (or a JSON line's members): exactly one
/// per side. `Err` names the columns expected.
pub fn sides(names: &[&str]) -> Result<[(IdKind, String); 2], String> {
    let mut out = Vec::with_capacity(2);
    for side in SIDES {
        let found: Vec<(IdKind, String)> = KINDS
            .iter()
            .map(|&k| (k, column(side, k)))
            .filter(|(_, c)| names.contains(&c.as_str()))
            .collect();
        let expected = KINDS.map(|k| column(side, k)).join(", ");
        match found.len() {
            1 => out.extend(found),
            0 => {
                return Err(format!(
                    "a merges file needs one {side} column: one of {expected} (columns: {})",
                    names.join(", ")
                ))
            }
            _ => {
                return Err(format!(
                    "a merges file needs exactly one {side} column, and this one has {}: keep \
one of {expected}",
                    found
                        .iter()
                        .map(|(_, c)| c.as_str())
                        .collect::<Vec<_>>()
                        .join(" and ")
                ))
            }
        }
    }
    let second = out.pop().unwrap_or((IdKind::Id, String::new()));
    let first = out.pop().unwrap_or((IdKind::Id, String::new()));
    Ok([first, second])
}

/// Whether two identifiers name the same person: same kind and value, emails without case.
pub fn same_person(a: &Identifier, b: &Identifier) -> bool {
    a.kind == b.kind
        && match a.kind {
            IdKind::Email => a.value.trim().eq_ignore_ascii_case(b.value.trim()),
            _ => a.value == b.value,
        }
}

impl Converter {
    /// The identifier kind both sides of a CSV merges file use, when they use the same one
    /// (`None` for mixed kinds, JSONL, or another kind of file).
    pub fn merge_kind(&self) -> Option<IdKind> {
        if self.opts.action != Action::Merge || self.columns.is_empty() {
            return None;
        }
        let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        let [(p, _), (s, _)] = sides(&names).ok()?;
        (p == s).then_some(p)
    }

    /// Converts one row into a merge operation: the primary is its person, the secondary
    /// its target. Never hashed: the ledger forgets both people before it is sent.
    pub(super) fn convert_merge(
        &self,
        pos: Position,
        raw: RawRow,
    ) -> Result<Operation, (Invalid, RawRow)> {
        match self.build_merge(&raw) {
            Ok((primary, secondary)) => Ok(Operation {
                pos,
                entity: Entity::Person,
                action: Action::Merge,
                payload: merge_payload(self.opts.api, &primary, &secondary),
                identifier: primary,
                event_id: None,
                attributes: 0,
                raw,
                hash: None,
                attrs: None,
                object: None,
                conditional: false,
                forget_first: true,
                target: Some(Target::Secondary(secondary)),
            }),
            Err(inv) => Err((inv, raw)),
        }
    }

    /// The pair's two identifiers, checked.
    fn build_merge(&self, raw: &RawRow) -> Result<(Identifier, Identifier), Invalid> {
        let cells: Vec<(String, String)> = match raw {
            RawRow::Csv(rec) => self
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), rec.get(i).unwrap_or_default().to_string()))
                .collect(),
            RawRow::Line(line) => {
                let fields = parse_object(line)?;
                let mut cells = Vec::with_capacity(fields.len());
                for (k, v) in &fields {
                    let value = json_object::read(v)
                        .map_err(|m| invalid(None, Some(k), format!("field '{k}' {m}")))?;
                    let text = match value {
                        serde_json::Value::Null => continue,
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Number(n) => n.to_string(),
                        other => {
                            return Err(invalid(
                                None,
                                Some(k),
                                format!(
                                    "field '{k}' is a JSON {}: an identifier is a string",
                                    crate::timestamp::json_kind(&other)
                                ),
                            ))
                        }
                    };
                    cells.push((k.to_string(), text));
                }
                cells
            }
            RawRow::CsvBytes(_) | RawRow::CsvLine(_) => {
                return Err(invalid(None, None, "not a readable CSV row".into()))
            }
        };
        let names: Vec<&str> = cells.iter().map(|(k, _)| k.as_str()).collect();
        let [(pk, pcol), (sk, scol)] = sides(&names).map_err(|m| invalid(None, None, m))?;
        let value = |col: &str| {
            cells
                .iter()
                .find(|(k, _)| k == col)
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let side = |kind: IdKind, col: &str| -> Result<Identifier, Invalid> {
            let v = value(col);
            validate::identifier(col, &v).map_err(|violation| Invalid {
                identifier: Some(v.clone()),
                violation,
            })?;
            let v = match kind {
                IdKind::CioId => v.strip_prefix("cio_").unwrap_or(&v).to_string(),
                _ => v,
            };
            Ok(Identifier { kind, value: v })
        };
        let primary = side(pk, &pcol)?;
        let secondary = side(sk, &scol)?;
        if same_person(&primary, &secondary) {
            return Err(invalid(
                Some(&primary.value),
                Some(&scol),
                format!(
                    "the primary and the secondary are the same person ({} {}): a merge needs \
two people; fix or drop the row",
                    primary.kind.as_str(),
                    primary.value
                ),
            ));
        }
        // Two identifiers of at most 150 bytes each: always far under the 32,000 bytes of a
        // batch operation.
        Ok((primary, secondary))
    }
}

#[cfg(test)]
mod tests {
    use super::super::ConvertOptions;
    use super::*;
    use crate::track::Api;
    use serde_json::{json, Value};

    fn conv(header: &[&str]) -> Result<Converter, String> {
        let opts = ConvertOptions {
            action: Action::Merge,
            ..ConvertOptions::new(IdKind::Id, "id", Api::Batch)
        };
        let header: Vec<String> = header.iter().map(|s| s.to_string()).collect();
        Converter::new(opts, Some(&header))
    }
    const POS: Position = Position { row: 1, line: 2 };

    #[test]
    fn a_pair_becomes_a_merge_and_the_same_person_is_invalid() {
        let c = conv(&["primary_id", "secondary_email"]).unwrap();
        let row =
            |a: &str, b: &str| c.convert(POS, RawRow::Csv(csv::StringRecord::from(vec![a, b])));
        let op = row("1", "X@Y.io").unwrap();
        assert_eq!(op.identifier.value, "1");
        let v: Value = serde_json::from_slice(&op.payload).unwrap();
        assert_eq!(
            v,
            json!({"type":"person","action":"merge","primary":{"id":"1"},"secondary":{"email":"X@Y.io"}})
        );
        assert!(op.forget_first && op.hash.is_none());
        let (e, _) = row("", "x@y.io").unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("primary_id"));
        let c = conv(&["primary_email", "secondary_email"]).unwrap();
        let (e, _) = c
            .convert(
                POS,
                RawRow::Csv(csv::StringRecord::from(vec!["a@b.io", "A@B.IO "])),
            )
            .unwrap_err();
        assert!(e.message().contains("same person"), "{}", e.message());
    }

    #[test]
    fn a_json_line_names_its_sides_by_member() {
        let opts = ConvertOptions {
            action: Action::Merge,
            ..ConvertOptions::new(IdKind::Id, "id", Api::V1)
        };
        let c = Converter::new(opts, None).unwrap();
        let line = |l: &str| c.convert(POS, RawRow::Line(l.as_bytes().to_vec()));
        let op = line(r#"{"primary_cio_id":"cio_abc","secondary_id":7}"#).unwrap();
        let v: Value = serde_json::from_slice(&op.payload).unwrap();
        assert_eq!(
            v,
            json!({"primary":{"cio_id":"abc"},"secondary":{"id":"7"}})
        );
        let (e, _) = line(r#"{"primary_id":"1"}"#).unwrap_err();
        assert!(
            e.message().contains("one secondary column"),
            "{}",
            e.message()
        );
        let (e, _) = line(r#"{"primary_id":"1","secondary_id":{"a":1}}"#).unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("secondary_id"));
    }

    #[test]
    fn a_header_needs_exactly_one_column_per_side() {
        let e = conv(&["primary_id", "primary_email", "secondary_id"]).unwrap_err();
        assert!(e.contains("primary_id and primary_email"), "{e}");
        let e = conv(&["primary_id", "id"]).unwrap_err();
        assert!(
            e.contains("secondary_id, secondary_email, secondary_cio_id"),
            "{e}"
        );
    }
}
