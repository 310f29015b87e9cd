//! Before a destructive run (`--action delete` or `suppress`): a pre-pass over the input counts
//! the people it will touch and names the first few, and [`decide`] says whether the run may
//! go on (`--yes`, a typed confirmation on a terminal, `--dry-run`, and the `--max-deletes`
//! cap). Nothing is sent before the decision.

use crate::config::ImportConfig;
use crate::operation::{Action, Entity};
use crate::source::Item;
use std::collections::HashSet;

/// The default of `--max-deletes`: a destructive run touching more people (objects,
/// relationships) is refused.
pub const DEFAULT_MAX_DELETES: u64 = 10_000;

/// How many identifiers the preview names.
pub const FIRST: usize = 5;

/// Whether `action` removes people (and so needs a confirmation): delete and suppress.
pub fn is_destructive(action: Action) -> bool {
    matches!(action, Action::Delete | Action::Suppress)
}

/// The noun of a people preview.
pub const PEOPLE: (&str, &str) = ("person", "people");

/// What the pre-pass found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preview {
    /// The action previewed.
    pub action: Action,
    /// Rows read (the pre-pass stops early once `people` passes the cap).
    pub rows: u64,
    /// Distinct people (identifier kind and value) among the rows that convert.
    pub people: u64,
    /// Rows whose identifier cannot be read (they will be reported as invalid, never sent).
    pub invalid: u64,
    /// The first [`FIRST`] distinct identifiers, in file order.
    pub first: Vec<String>,
    /// What is counted, singular and plural: people, or with `--kind objects` and
    /// `--kind relationships` objects and relationships (`people` then counts those).
    pub noun: (&'static str, &'static str),
    /// The count stopped at the cap plus one: the file holds at least `people`.
    pub at_least: bool,
}

impl Preview {
    /// The lines shown before the decision.
    pub fn describe(&self, input: &str) -> String {
        let more = if self.at_least { "at least " } else { "" };
        let mut s = format!(
            "{}: {more}{} {} in {input}",
            self.action.as_str(),
            self.people,
            if self.people == 1 {
                self.noun.0
            } else {
                self.noun.1
            },
        );
        if self.invalid > 0 {
            s += &format!(
                " ({} rows without a readable identifier will not be sent)",
                self.invalid
            );
        }
        if !self.first.is_empty() {
            s += &format!("\n  first: {}", self.first.join(", "));
            if self.people > self.first.len() as u64 {
                s += ", ...";
            }
        }
        s
    }
}

/// Reads the whole input once (stopping once the count passes `cap`) and counts the distinct
/// people its rows address. Needs a file: stdin cannot be read twice.
pub fn preview(cfg: &ImportConfig, cap: u64) -> Result<Preview, String> {
    if !cfg.input.rereadable() {
        return Err(format!(
            "--action {} counts the people first, so it reads the input twice: give a regular \
file, not stdin or a pipe",
            cfg.convert.action.as_str()
        ));
    }
    let (rows, converter) = crate::convert::prepass(cfg)?;
    let mut seen: HashSet<u128> = HashSet::new();
    let noun = match cfg.convert.object.as_ref().map(|o| o.kind) {
        None => PEOPLE,
        Some(crate::convert::ObjectKind::Objects) => ("object", "objects"),
        Some(crate::convert::ObjectKind::Relationships) => ("relationship", "relationships"),
    };
    let mut p = Preview {
        action: cfg.convert.action,
        rows: 0,
        people: 0,
        invalid: 0,
        first: Vec::new(),
        at_least: false,
        noun,
    };
    for item in rows {
        let item = item.map_err(|e| e.to_string())?;
        p.rows += 1;
        match item {
            Item::Bad { .. } => p.invalid += 1,
            Item::Row { pos, raw } => match converter.convert(pos, raw) {
                Err(_) => p.invalid += 1,
                Ok(op) => {
                    let shown = match op.object.as_deref() {
                        Some(o) if op.entity == Entity::Object => o.id.clone(),
                        Some(o) => format!("{} -> {}", op.identifier.v1_path_value(), o.id),
                        None => op.identifier.v1_path_value(),
                    };
                    if seen.insert(op.key().seen_hash()) {
                        p.people += 1;
                        if p.first.len() < FIRST {
                            p.first.push(shown);
                        }
                        if p.people > cap {
                            p.at_least = true;
                            break;
                        }
                    }
                }
            },
        }
    }
    Ok(p)
}

/// What a destructive run may do once its preview is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on (confirmed, or a dry run that sends nothing).
    Proceed,
    /// Ask for the count to be typed (a terminal, without `--yes`).
    Ask,
    /// Stop: nothing is sent; the message says why and what to do.
    Refuse(String),
}

/// Whether a destructive run with this preview may go on.
pub fn decide(p: &Preview, yes: bool, dry_run: bool, cap: u64, terminal: bool) -> Decision {
    let action = p.action.as_str();
    if dry_run {
        return Decision::Proceed;
    }
    if p.people > cap {
        let n = if p.at_least {
            format!("more than {cap}")
        } else {
            p.people.to_string()
        };
        return Decision::Refuse(format!(
            "--action {action} would touch {n} {}, more than --max-deletes {cap}: \
nothing was sent; check the file, or raise --max-deletes if you mean it",
            p.noun.1
        ));
    }
    if yes || p.people == 0 {
        return Decision::Proceed;
    }
    if terminal {
        return Decision::Ask;
    }
    Decision::Refuse(format!(
        "--action {action} would {action} {} {} and needs a confirmation: nothing was sent; \
check with --dry-run, then add --yes",
        p.people,
        if p.people == 1 { p.noun.0 } else { p.noun.1 }
    ))
}

/// Whether a typed answer confirms `people`: the count itself, spaces around it allowed.
pub fn confirms(answer: &str, people: u64) -> bool {
    answer.trim() == people.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(people: u64) -> Preview {
        Preview {
            action: Action::Delete,
            rows: people,
            people,
            invalid: 0,
            first: vec!["1".into()],
            at_least: false,
            noun: PEOPLE,
        }
    }

    #[test]
    fn only_yes_a_terminal_or_a_dry_run_lets_a_destructive_run_go_on() {
        assert_eq!(decide(&p(3), true, false, 10, false), Decision::Proceed);
        assert_eq!(decide(&p(3), false, true, 10, false), Decision::Proceed);
        assert_eq!(decide(&p(3), false, false, 10, true), Decision::Ask);
        let Decision::Refuse(m) = decide(&p(3), false, false, 10, false) else {
            panic!()
        };
        assert!(m.contains("--yes") && m.contains("3 people"), "{m}");
        // The cap holds even with --yes, but not for a dry run (which sends nothing).
        assert!(matches!(
            decide(&p(11), true, false, 10, false),
            Decision::Refuse(m) if m.contains("--max-deletes 10")
        ));
        assert_eq!(decide(&p(11), false, true, 10, false), Decision::Proceed);
        assert_eq!(decide(&p(10), true, false, 10, false), Decision::Proceed);
    }

    #[test]
    fn the_typed_answer_must_be_the_count() {
        assert!(confirms(" 3\n", 3));
        assert!(!confirms("yes", 3));
        assert!(!confirms("4", 3));
    }

    #[test]
    fn only_delete_and_suppress_are_destructive() {
        assert!(is_destructive(Action::Delete));
        assert!(is_destructive(Action::Suppress));
        assert!(!is_destructive(Action::Unsuppress));
        assert!(!is_destructive(Action::Identify));
    }
}
