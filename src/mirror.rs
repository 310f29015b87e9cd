//! Mirror mode (`--mirror delete|suppress|clear:ATTRIBUTE`, with `--state`): people the ledger
//! knows for this workspace who are absent from tonight's complete export are deleted,
//! suppressed, or have one attribute cleared: Census's and Hightouch's "mirror" sync.
//!
//! The rules, in the order the engine applies them once the input has been read:
//! - removals happen only after every row was read successfully: never after a read error,
//!   an interruption (Ctrl-C, SIGTERM) or a fatal answer, never on a dry run, never when a
//!   guard ([`crate::guard`]) stopped the run;
//! - a person is *seen* tonight when any row names them, whatever became of the row (sent,
//!   skipped, invalid, rejected): only people no row names are absent. A row whose identifier
//!   cannot be read at all might be anyone, so it holds every removal back;
//! - only people known by the identifier kind of the export are considered (a person known by
//!   email is never removed by an export by id), only this workspace's, and only those of this
//!   run's feed ([`crate::feed`]: the input that last sent them; people other inputs sent to
//!   the same state file, or recorded before feeds, are left alone and counted);
//! - a person stays known to their feed while their values are unknown (a send that was
//!   rejected, ran out of retries, or was never acknowledged clears the hash, not the record):
//!   if they then vanish from the export, they are absent like anyone else;
//! - the count of removals is capped (`--max-removals N` or `PCT%`, default
//!   [`DEFAULT_MAX_REMOVALS_PCT`]% of the people known) and needs `--yes` (or the count typed
//!   on a terminal): above the cap or the confirmed count, nothing is removed;
//! - before a removal is sent, the person leaves the `people` table and enters `removals`
//!   (one durable transaction): whatever the answer, the ledger no longer claims them, and a
//!   removal whose outcome is unknown or that failed is tried again by the next mirror run while
//!   they stay absent. An acknowledged removal leaves `removals` too. A person seen again
//!   leaves `removals` (they are back).
//!
//! Removals are not rows: the summary counts them apart ([`MirrorReport`]) and the identity
//! `rows = sent + skipped + failed` is untouched. They travel through the same pipeline as rows
//! (batching, pacing, retries), marked by the position [`REMOVAL_POS`].

use crate::operation::{Action, Entity, Operation};
use crate::record::{IdKind, Identifier, Position, RawRow};
use crate::seen::SeenFilter;
use crate::track::{Api, PayloadWriter};
use rusqlite::{params, Connection};
use serde::Serialize;

/// The default cap on removals: this percentage of the people the ledger knows.
pub const DEFAULT_MAX_REMOVALS_PCT: f64 = 5.0;

/// The position of a removal: no row has number 0, so outcomes tell removals from rows by it.
pub const REMOVAL_POS: Position = Position { row: 0, line: 0 };

/// Whether an outcome at `pos` is a mirror removal rather than a row.
pub fn is_removal(pos: Position) -> bool {
    pos.row == 0 && pos.line == 0
}

/// A mirror setting that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    /// `--mirror` takes something else.
    #[error("--mirror {0}: give delete, suppress, clear:ATTRIBUTE or clear:ATTRIBUTE=VALUE (e.g. clear:in_crm=false)")]
    Mode(String),
    /// `--max-removals` takes something else.
    #[error("--max-removals {0}: give a number of people (e.g. 100) or a percentage of the people the state file knows (e.g. 5%)")]
    Cap(String),
}

/// What happens to a person absent from the export.
#[derive(Clone, Debug, PartialEq)]
pub enum MirrorMode {
    /// Deleted (`action: delete`).
    Delete,
    /// Suppressed (`action: suppress`): deleted, and their identifier refused from now on.
    Suppress,
    /// One attribute set to `value` (`""` by default: Customer.io's "nullify"), sent with
    /// `_update: true` so that nobody who no longer exists is created again.
    Clear {
        /// The attribute.
        attribute: String,
        /// The value it gets.
        value: serde_json::Value,
    },
}

impl std::str::FromStr for MirrorMode {
    type Err = MirrorError;
    fn from_str(s: &str) -> Result<MirrorMode, MirrorError> {
        match s {
            "delete" => Ok(MirrorMode::Delete),
            "suppress" => Ok(MirrorMode::Suppress),
            _ => {
                let rest = s
                    .strip_prefix("clear:")
                    .ok_or_else(|| MirrorError::Mode(s.into()))?;
                let (attribute, value) = match rest.split_once('=') {
                    Some((a, v)) => (
                        a,
                        serde_json::from_str::<serde_json::Value>(v)
                            .ok()
                            .filter(|v| !v.is_object() && !v.is_array() && !v.is_null())
                            .unwrap_or_else(|| serde_json::Value::String(v.into())),
                    ),
                    None => (rest, serde_json::Value::String(String::new())),
                };
                let attribute = attribute.trim();
                if attribute.is_empty()
                    || attribute.len() > crate::validate::MAX_NAME_BYTES
                    || attribute == "_update"
                {
                    return Err(MirrorError::Mode(s.into()));
                }
                Ok(MirrorMode::Clear {
                    attribute: attribute.into(),
                    value,
                })
            }
        }
    }
}

impl MirrorMode {
    /// The mode as the summary and messages name it (`delete`, `clear:in_crm`).
    pub fn name(&self) -> String {
        match self {
            MirrorMode::Delete => "delete".into(),
            MirrorMode::Suppress => "suppress".into(),
            MirrorMode::Clear { attribute, .. } => format!("clear:{attribute}"),
        }
    }

    /// What it does to a person, for messages (`delete`, `clear in_crm of`).
    pub fn verb(&self) -> String {
        match self {
            MirrorMode::Delete => "delete".into(),
            MirrorMode::Suppress => "suppress".into(),
            MirrorMode::Clear { attribute, value } => format!("set {attribute} = {value} on"),
        }
    }

    /// The operation that removes `id`.
    pub fn operation(&self, api: Api, id: Identifier) -> Operation {
        let (action, payload) = match self {
            MirrorMode::Delete | MirrorMode::Suppress => {
                let action = if *self == MirrorMode::Delete {
                    Action::Delete
                } else {
                    Action::Suppress
                };
                (
                    action,
                    crate::track::bare_payload(api, Entity::Person, action, &id),
                )
            }
            MirrorMode::Clear { attribute, value } => {
                let mut w = PayloadWriter::begin(api, &id, 96 + attribute.len() + id.value.len());
                w.key(attribute);
                w.json_value(value);
                w.key("_update");
                w.raw_value("true");
                (Action::Identify, w.finish())
            }
        };
        Operation {
            pos: REMOVAL_POS,
            entity: Entity::Person,
            action,
            identifier: id,
            event_id: None,
            attributes: 1,
            payload,
            raw: RawRow::Line(Vec::new()),
            hash: None,
            attrs: None,
            object: None,
            // A clear never creates anyone (`_update`); the ledger is written before the
            // removals are sent (see [`record_pending`]), never from their acknowledgement.
            conditional: matches!(self, MirrorMode::Clear { .. }),
            forget_first: false,
            target: None,
        }
    }
}

/// `--max-removals`: a number of people, or a percentage of the people the ledger knows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RemovalCap {
    /// At most this many.
    Count(u64),
    /// At most this percentage of the people known (for this workspace and identifier kind).
    Percent(f64),
}

impl Default for RemovalCap {
    fn default() -> Self {
        RemovalCap::Percent(DEFAULT_MAX_REMOVALS_PCT)
    }
}

impl std::str::FromStr for RemovalCap {
    type Err = MirrorError;
    fn from_str(s: &str) -> Result<RemovalCap, MirrorError> {
        let bad = || MirrorError::Cap(s.into());
        match s.trim().strip_suffix('%') {
            Some(p) => {
                let p: f64 = p.trim().parse().map_err(|_| bad())?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(bad());
                }
                Ok(RemovalCap::Percent(p))
            }
            None => s.trim().parse().map(RemovalCap::Count).map_err(|_| bad()),
        }
    }
}

impl RemovalCap {
    /// The most removals allowed when the ledger knows `known` people.
    pub fn limit(self, known: u64) -> u64 {
        match self {
            RemovalCap::Count(n) => n,
            RemovalCap::Percent(p) => (known as f64 * p / 100.0).floor() as u64,
        }
    }
}

impl std::fmt::Display for RemovalCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemovalCap::Count(n) => write!(f, "{n}"),
            RemovalCap::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// The mirror settings of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct MirrorSettings {
    /// What happens to the absent.
    pub mode: MirrorMode,
    /// `--max-removals`.
    pub cap: RemovalCap,
    /// How many removals were confirmed: `u64::MAX` with `--yes`, the typed count on a
    /// terminal, 0 otherwise (then nothing is removed).
    pub confirmed: u64,
}

/// The key under which a person is remembered as seen tonight: the identifier's value alone,
/// lowercased, whatever its kind (so a value seen in any form keeps everyone it could name: a
/// false match only keeps someone, never removes anyone).
pub fn seen_key(value: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(value.trim().to_lowercase().as_bytes())
}

/// People seen tonight (a Bloom filter of [`seen_key`]s: a false positive keeps someone), and
/// rows whose identifier could not be read.
#[derive(Default)]
pub struct Seen {
    /// The identifiers seen.
    pub filter: SeenFilter,
    /// Rows without a readable identifier: anyone absent might be one of them.
    pub unidentified: u64,
}

impl Seen {
    /// A row naming `value` (or, with `None`, a row whose identifier cannot be read).
    pub fn saw(&mut self, value: Option<&str>) {
        match value.filter(|v| !v.trim().is_empty()) {
            Some(v) => self.filter.insert(seen_key(v)),
            None => self.unidentified += 1,
        }
    }

    /// Whether a row named `value`.
    pub fn has(&self, value: &str) -> bool {
        self.filter.may_contain(seen_key(value))
    }
}

fn kind_of(s: &str) -> Option<IdKind> {
    match s {
        "id" => Some(IdKind::Id),
        "email" => Some(IdKind::Email),
        "cio_id" => Some(IdKind::CioId),
        _ => None,
    }
}

/// Who is absent: the people the ledger knows for a workspace (acknowledged, or with a removal
/// pending) that no row named.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Absent {
    /// People known by the export's identifier kind.
    pub known: u64,
    /// People known by another kind: left alone.
    pub other_kinds: u64,
    /// People of another feed, or recorded before feeds: left alone.
    pub other_feeds: u64,
    /// How many are absent.
    pub count: u64,
    /// The absent, in identifier order, up to the limit asked for.
    pub people: Vec<Identifier>,
    /// Of them, removals pending since an earlier run.
    pub pending: u64,
    /// Pending removals of people seen again (they are back: no longer to remove).
    pub back: Vec<Identifier>,
    /// Members of this feed absent from it tonight whom another feed still holds (with the
    /// first such feed): they leave this feed and are kept, never removed.
    pub left: Vec<(Identifier, String)>,
}

/// Whether the `removals` table exists (a state file of an older version has none).
fn has_removals(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'removals'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The absent among the people `conn`'s ledger knows for destination `dest`, considering only
/// identifier kind `kind`; at most `limit` of them listed (all are counted).
/// Only people of `feed` are considered: others are counted in [`Absent::other_feeds`]
/// (pending removals recorded before feeds are owed by any feed's mirror).
pub fn absent(
    conn: &Connection,
    dest: i64,
    kind: IdKind,
    feed: &str,
    seen: &Seen,
    limit: usize,
) -> rusqlite::Result<Absent> {
    let mut a = Absent::default();
    let has_feed = |table: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            &format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE name = 'feed'"),
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    let pending_sql = if has_removals(conn)? {
        if has_feed("removals")? {
            "SELECT kind, identifier, 1, coalesce(feed, ?2), NULL FROM removals WHERE dest = ?1 AND NOT EXISTS \
             (SELECT 1 FROM people p WHERE p.dest = ?1 AND p.kind = removals.kind AND p.identifier = removals.identifier)"
        } else {
            "SELECT kind, identifier, 1, ?2, NULL FROM removals WHERE dest = ?1 AND NOT EXISTS \
             (SELECT 1 FROM people p WHERE p.dest = ?1 AND p.kind = removals.kind AND p.identifier = removals.identifier)"
        }
    } else {
        "SELECT '', '', 1, NULL, NULL WHERE 0"
    };
    // A person is this feed's when a membership says so ([`crate::feed_members`]); without
    // the table (an older state file read as it is), when `people.feed` does.
    let (people_feed, other) = if crate::feed_members::present(conn)? {
        (
            "CASE WHEN EXISTS (SELECT 1 FROM feed_members m WHERE m.dest = ?1 AND m.kind = people.kind \
             AND m.identifier = people.identifier AND m.feed = ?2) THEN ?2 ELSE feed END",
            "(SELECT min(m.feed) FROM feed_members m WHERE m.dest = ?1 AND m.kind = people.kind \
             AND m.identifier = people.identifier AND m.feed <> ?2)",
        )
    } else if has_feed("people")? {
        ("feed", "NULL")
    } else {
        ("NULL", "NULL")
    };
    let sql = format!(
        "SELECT kind, identifier, 0, {people_feed}, {other} FROM people WHERE dest = ?1 UNION ALL {pending_sql} ORDER BY 2"
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(params![dest, feed])?;
    while let Some(r) = rows.next()? {
        let k: String = r.get(0)?;
        let value: String = r.get(1)?;
        let pending: i64 = r.get(2)?;
        let of: Option<String> = r.get(3)?;
        let other: Option<String> = r.get(4)?;
        if kind_of(&k) != Some(kind) {
            a.other_kinds += 1;
            continue;
        }
        // Someone of another feed whom tonight's rows name is this feed's from tonight on
        // (the reader claims them): known, and never absent.
        if of.as_deref() != Some(feed) && !seen.has(&value) {
            a.other_feeds += 1;
            continue;
        }
        a.known += 1;
        let id = Identifier { kind, value };
        if seen.has(&id.value) {
            if pending == 1 {
                a.back.push(id);
            }
            continue;
        }
        // Another feed still holds them: they only leave this one.
        if let Some(other) = other {
            a.left.push((id, other));
            continue;
        }
        a.count += 1;
        a.pending += pending as u64;
        if a.people.len() < limit {
            a.people.push(id);
        }
    }
    Ok(a)
}

/// Before the removals are sent, in one durable transaction: they leave `people` (no claim
/// that they exist with any values; deleted or suppressed, their relationships and devices
/// leave with them, [`crate::ledger::forget_removed`]) and enter `removals` (a removal owed, until one is
/// acknowledged); a suppression is recorded as such (the ledger never claims a maybe
/// suppressed person). Pending removals of people seen again are dropped; the people who
/// left this feed but another still holds ([`Absent::left`]) lose only this membership.
pub fn record_pending(
    conn: &mut Connection,
    dest: i64,
    feed: &str,
    run_id: i64,
    mode: &MirrorMode,
    all: &Absent,
) -> rusqlite::Result<()> {
    let (people, back, left) = (&all.people, &all.back, &all.left);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let tx = conn.transaction()?;
    {
        let mut owe = tx.prepare(
            "INSERT INTO removals (dest, kind, identifier, mode, since, run_id, feed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (dest, kind, identifier) DO UPDATE SET mode = excluded.mode, run_id = excluded.run_id, feed = excluded.feed",
        )?;
        let mut sup = tx.prepare(
            "INSERT INTO suppressed (dest, kind, identifier, since, run_id) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (dest, kind, identifier) DO NOTHING",
        )?;
        let mut gone =
            tx.prepare("DELETE FROM removals WHERE dest = ?1 AND kind = ?2 AND identifier = ?3")?;
        for id in people {
            let k = id.kind.as_str();
            // Removed from Customer.io: their relationships and devices go with them (a
            // cleared attribute changes the person alone).
            match mode {
                MirrorMode::Delete | MirrorMode::Suppress => {
                    crate::ledger::forget_removed(&tx, dest, id.kind, &id.value)?
                }
                MirrorMode::Clear { .. } => {
                    crate::ledger::forget_person(&tx, dest, id.kind, &id.value)?
                }
            }
            owe.execute(params![dest, k, id.value, mode.name(), t, run_id, feed])?;
            if *mode == MirrorMode::Suppress {
                sup.execute(params![dest, k, id.value, t, run_id])?;
            }
        }
        for id in back {
            gone.execute(params![dest, id.kind.as_str(), id.value])?;
        }
        for (id, other) in left {
            crate::feed_members::leave(&tx, dest, id.kind.as_str(), &id.value, feed, other)?;
        }
    }
    tx.commit()
}

/// The mirror's part of a run's summary. `removed + failed + not_sent = absent` once removals
/// were sent; when they were held back (`held_back` says why), `not_sent = absent`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MirrorReport {
    /// `delete`, `suppress` or `clear:ATTRIBUTE`.
    pub mode: String,
    /// People the ledger knows for this workspace by the export's identifier kind.
    pub known: u64,
    /// Of them, absent from the export.
    pub absent: u64,
    /// Removals acknowledged (they left the ledger).
    pub removed: u64,
    /// Removals refused, whose retries ran out, or not sent because the run stopped: still
    /// pending, tried again by the next mirror run.
    pub failed: u64,
    /// Removals not sent at all (held back).
    pub not_sent: u64,
    /// People known by another identifier kind, left alone.
    pub other_kinds: u64,
    /// This run's feed ([`crate::feed`]).
    pub feed: String,
    /// People of other feeds (other inputs of the same state file), or recorded before
    /// feeds, left alone.
    pub other_feeds: u64,
    /// Members of this feed absent from it whom another feed still holds: they left this
    /// feed and were kept (the first few listed in [`MirrorReport::left_first`]).
    pub left: u64,
    /// The first few of them, as `ID (still in feed NAME)`.
    pub left_first: Vec<String>,
    /// The first few absent people.
    pub first: Vec<String>,
    /// Why nothing was removed, when nothing was.
    pub held_back: Option<String>,
}

impl MirrorReport {
    /// The summary table's lines.
    pub fn table(&self) -> String {
        let mut out = format!(
            "  mirror {}: {} known, {} absent: {} removed, {} failed, {} not sent\n",
            self.mode, self.known, self.absent, self.removed, self.failed, self.not_sent
        );
        if !self.first.is_empty() {
            out += &format!("    absent: {}", self.first.join(", "));
            if self.absent > self.first.len() as u64 {
                out += ", ...";
            }
            out.push('\n');
        }
        if self.left > 0 {
            out += &format!(
                "    {} people left this feed, kept: still in another feed: {}{}\n",
                self.left,
                self.left_first.join(", "),
                if self.left > self.left_first.len() as u64 {
                    ", ..."
                } else {
                    ""
                }
            );
        }
        if self.other_kinds > 0 {
            out += &format!(
                "    {} people known by another identifier kind were left alone\n",
                self.other_kinds
            );
        }
        if self.other_feeds > 0 {
            out += &format!(
                "    {} people of other feeds than {:?} (or recorded before feeds) were left alone\n",
                self.other_feeds, self.feed
            );
        }
        if let Some(h) = &self.held_back {
            out += &format!("    nothing removed: {h}\n");
        }
        out
    }
}

/// What `cio-import state` says of pending removals, per workspace ("" when none).
pub fn describe_pending(conn: &Connection) -> rusqlite::Result<String> {
    if !has_removals(conn)? {
        return Ok(String::new());
    }
    let mut st = conn.prepare(
        "SELECT d.site_id, d.host, count(*), group_concat(r.identifier, ', ') FROM removals r \
         JOIN destinations d ON d.id = r.dest GROUP BY r.dest ORDER BY r.dest",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    let mut out = String::new();
    for row in rows {
        let (site_id, host, n, ids) = row?;
        let ids = ids.unwrap_or_default();
        let shown: Vec<&str> = ids.split(", ").take(crate::confirm::FIRST).collect();
        out += &format!(
            "  {n} mirror removals pending (sent without an acknowledgement, or refused) for site {site_id} at {host}: {}{}\n",
            shown.join(", "),
            if n as usize > shown.len() { ", ..." } else { "" }
        );
    }
    Ok(out)
}

/// What `cio-import state --json` says of pending removals: one entry per workspace with any,
/// `{site_id, host, count, first}` (the first [`crate::confirm::FIRST`] identifiers).
pub fn pending_json(conn: &Connection) -> rusqlite::Result<Vec<serde_json::Value>> {
    if !has_removals(conn)? {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare(
        "SELECT d.site_id, d.host, count(*), group_concat(r.identifier, char(10)) FROM removals r \
         JOIN destinations d ON d.id = r.dest GROUP BY r.dest ORDER BY r.dest",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (site_id, host, n, ids) = row?;
        let ids = ids.unwrap_or_default();
        let first: Vec<&str> = ids.split('\n').take(crate::confirm::FIRST).collect();
        out.push(serde_json::json!({
            "site_id": site_id,
            "host": host,
            "count": n,
            "first": first,
        }));
    }
    Ok(out)
}

/// A run's mirror figures for `cio-import state`'s list of runs ("" without mirror).
pub fn describe_run(summary: &serde_json::Value) -> String {
    let m = &summary["mirror"];
    if !m.is_object() {
        return String::new();
    }
    let g = |k: &str| m[k].as_u64().unwrap_or(0);
    let mode = m["mode"].as_str().unwrap_or("?");
    if m["held_back"].is_string() {
        return format!(
            "; mirror {mode}: {} absent, none removed (held back)",
            g("absent")
        );
    }
    format!(
        "; mirror {mode}: {} absent, {} removed, {} failed",
        g("absent"),
        g("removed"),
        g("failed") + g("not_sent"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_caps_parse() {
        assert_eq!("delete".parse::<MirrorMode>(), Ok(MirrorMode::Delete));
        assert_eq!(
            "clear:in_crm=false".parse::<MirrorMode>(),
            Ok(MirrorMode::Clear {
                attribute: "in_crm".into(),
                value: serde_json::Value::Bool(false)
            })
        );
        assert_eq!(
            "clear:plan".parse::<MirrorMode>(),
            Ok(MirrorMode::Clear {
                attribute: "plan".into(),
                value: serde_json::Value::String(String::new())
            })
        );
        assert!("clear:".parse::<MirrorMode>().is_err());
        assert!("remove".parse::<MirrorMode>().is_err());
        assert_eq!("12".parse::<RemovalCap>(), Ok(RemovalCap::Count(12)));
        assert_eq!("2.5%".parse::<RemovalCap>(), Ok(RemovalCap::Percent(2.5)));
        assert!("150%".parse::<RemovalCap>().is_err());
        assert_eq!(RemovalCap::Percent(5.0).limit(199), 9);
        assert_eq!(RemovalCap::default().limit(20), 1);
    }

    #[test]
    fn a_value_seen_in_any_case_or_kind_is_seen() {
        let mut s = Seen::default();
        s.saw(Some("Ann@Example.com"));
        s.saw(None);
        assert!(s.has("ann@example.com"));
        assert!(!s.has("bob@example.com"));
        assert_eq!(s.unidentified, 1);
    }
}
