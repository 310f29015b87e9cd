//! Before a destructive run (`--action delete` or `suppress`, `--kind devices --action delete`,
//! `--kind merges`): a pre-pass over the input counts the people (devices, merges) it will
//! touch and names the first few, and [`decide`] says whether the run may go on (`--yes`, a
//! typed confirmation on a terminal, `--dry-run`, and the cap: `--max-deletes`, or
//! `--max-merges` for merges). Nothing is sent before the decision. A merges preview warns,
//! at its line, about a pair naming a person an earlier pair merged away (a chain: `1<-2`
//! then `2<-3`), which Customer.io ignores; it is still sent (and counted), so the warning
//! comes before the confirmation.

use crate::config::ImportConfig;
use crate::operation::{Action, Entity};
use crate::record::{IdKind, Identifier};
use crate::source::Item;
use std::collections::{HashMap, HashSet};

/// The default of `--max-deletes`: a destructive run touching more people (objects,
/// relationships) is refused.
pub const DEFAULT_MAX_DELETES: u64 = 10_000;

/// The default of `--max-merges`: a merges file with more pairs is refused.
pub const DEFAULT_MAX_MERGES: u64 = 1_000;

/// How many identifiers the preview names.
pub const FIRST: usize = 5;

/// How many merges the preview lists, one a line.
pub const FIRST_MERGES: usize = 20;

/// Whether `action` removes people, devices or merges people (and so needs a confirmation):
/// delete, suppress, delete_device, merge.
pub fn is_destructive(action: Action) -> bool {
    matches!(
        action,
        Action::Delete | Action::Suppress | Action::DeleteDevice | Action::Merge
    )
}

/// What a preview counts, for `n` of them: people, devices or merges.
pub fn noun(action: Action, n: u64) -> &'static str {
    match (action, n == 1) {
        (Action::DeleteDevice, true) => "device",
        (Action::DeleteDevice, false) => "devices",
        (Action::Merge, true) => "merge",
        (Action::Merge, false) => "merges",
        (_, true) => "person",
        (_, false) => "people",
    }
}

/// The option that caps `action`.
pub fn cap_option(action: Action) -> &'static str {
    match action {
        Action::Merge => "--max-merges",
        _ => "--max-deletes",
    }
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
    /// Distinct people (identifier kind and value) among the rows that convert; for
    /// `delete_device`, distinct devices (tokens); for merges, every pair.
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
    /// Merges: pairs naming a person an earlier pair of the file merged away (as its
    /// secondary), one warning each at its line (the first [`FIRST_MERGES`]); Customer.io
    /// ignores them, since that person no longer exists.
    pub chains: Vec<String>,
    /// How many such pairs (past those named in `chains` too).
    pub chained: u64,
}

impl Preview {
    /// What is counted (person or people, object or objects, ...), for `n` of them.
    pub fn noun_for(&self, n: u64) -> &'static str {
        if n == 1 {
            self.noun.0
        } else {
            self.noun.1
        }
    }

    /// The lines shown before the decision.
    pub fn describe(&self, input: &str) -> String {
        let more = if self.at_least { "at least " } else { "" };
        let mut s = format!(
            "{}: {more}{} {} in {input}",
            self.action.as_str(),
            self.people,
            self.noun_for(self.people),
        );
        if self.invalid > 0 {
            s += &format!(
                " ({} rows without a readable identifier will not be sent)",
                self.invalid
            );
        }
        if self.action == Action::Merge {
            for m in &self.first {
                s += &format!("\n  {m}");
            }
            if self.people > self.first.len() as u64 {
                s += &format!("\n  ... and {} more", self.people - self.first.len() as u64);
            }
            for c in &self.chains {
                s += &format!("\n  warning: {c}");
            }
            if self.chained > self.chains.len() as u64 {
                s += &format!(
                    "\n  warning: ... and {} more pairs naming a person merged away before",
                    self.chained - self.chains.len() as u64
                );
            }
        } else if !self.first.is_empty() {
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
        let (what, counts) = match cfg.convert.action {
            Action::Merge => ("--kind merges".to_string(), "the merges"),
            Action::DeleteDevice => ("--kind devices --action delete".to_string(), "the devices"),
            a => (format!("--action {}", a.as_str()), "the people"),
        };
        return Err(format!(
            "{what} counts {counts} first, so it reads the input twice: give a regular \
file, not stdin or a pipe"
        ));
    }
    let (rows, converter) = crate::convert::prepass(cfg)?;
    let mut seen: HashSet<u128> = HashSet::new();
    let noun = match cfg.convert.object.as_ref().map(|o| o.kind) {
        None => (noun(cfg.convert.action, 1), noun(cfg.convert.action, 2)),
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
        chains: Vec::new(),
        chained: 0,
    };
    // Merges: who an earlier pair merged away (kind, value; emails without case), and where.
    let mut merged_away: HashMap<(IdKind, String), u64> = HashMap::new();
    let person = |id: &Identifier| {
        let v = match id.kind {
            IdKind::Email => id.value.trim().to_ascii_lowercase(),
            _ => id.value.clone(),
        };
        (id.kind, v)
    };
    for item in rows {
        let item = item.map_err(|e| e.to_string())?;
        p.rows += 1;
        match item {
            Item::Bad { .. } => p.invalid += 1,
            Item::Row { pos, raw } => match converter.convert(pos, raw) {
                Err(_) => p.invalid += 1,
                Ok(op) if op.action == Action::Merge => {
                    p.people += 1;
                    if let (true, Some(crate::operation::Target::Secondary(sec))) =
                        (p.first.len() < FIRST_MERGES, &op.target)
                    {
                        p.first.push(format!(
                            "line {}: merge {} {} into {} {}",
                            op.pos.line,
                            sec.kind.as_str(),
                            sec.value,
                            op.identifier.kind.as_str(),
                            op.identifier.value
                        ));
                    }
                    if let Some(crate::operation::Target::Secondary(sec)) = &op.target {
                        let sides = [("primary", &op.identifier), ("secondary", sec)];
                        let earlier = sides.iter().find_map(|(side, id)| {
                            merged_away.get(&person(id)).map(|at| (*side, *id, *at))
                        });
                        if let Some((side, id, at)) = earlier {
                            p.chained += 1;
                            if p.chains.len() < FIRST_MERGES {
                                p.chains.push(format!(
                                    "line {}: the {side} {} {} was merged away at line {at}: \
Customer.io will ignore this pair (merge into the first primary instead; `inspect \
--suggest-merges` writes chain-free pairs)",
                                    op.pos.line,
                                    id.kind.as_str(),
                                    id.value
                                ));
                            }
                        }
                        merged_away.entry(person(sec)).or_insert(op.pos.line);
                    }
                    if p.people > cap {
                        p.at_least = true;
                        break;
                    }
                }
                Ok(op) if op.action == Action::DeleteDevice => {
                    let token = op.device_token().unwrap_or_default().to_string();
                    // Devices are counted by token.
                    if seen.insert(op.key().seen_hash()) {
                        p.people += 1;
                        if p.first.len() < FIRST {
                            p.first
                                .push(format!("{} on {}", token, op.identifier.v1_path_value()));
                        }
                        if p.people > cap {
                            p.at_least = true;
                            break;
                        }
                    }
                }
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
    let flag = cap_option(p.action);
    let what = match p.action {
        Action::Merge => "--kind merges".to_string(),
        _ => format!("--action {action}"),
    };
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
            "{what} would touch {n} {}, more than {flag} {cap}: \
nothing was sent; check the file, or raise {flag} if you mean it",
            p.noun.1
        ));
    }
    if yes || p.people == 0 {
        return Decision::Proceed;
    }
    if terminal {
        return Decision::Ask;
    }
    let doing = match p.action {
        Action::Merge => format!("would make {} {}", p.people, p.noun_for(p.people)),
        _ => format!("would {action} {} {}", p.people, p.noun_for(p.people)),
    };
    Decision::Refuse(format!(
        "{what} {doing} and needs a confirmation: nothing was sent; \
check with --dry-run, then add --yes"
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
            chains: Vec::new(),
            chained: 0,
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
        assert!(is_destructive(Action::Merge));
        assert!(is_destructive(Action::DeleteDevice));
        assert!(!is_destructive(Action::AddDevice));
    }

    #[test]
    fn merges_are_capped_by_max_merges() {
        let mut m = p(3);
        m.action = Action::Merge;
        // As `preview` counts them.
        m.noun = (noun(Action::Merge, 1), noun(Action::Merge, 2));
        assert!(matches!(
            decide(&m, true, false, 2, false),
            Decision::Refuse(s) if s.contains("--max-merges 2") && s.contains("3 merges")
        ));
        assert!(matches!(
            decide(&m, false, false, 10, false),
            Decision::Refuse(s) if s.contains("--kind merges would make 3 merges")
        ));
    }
}
