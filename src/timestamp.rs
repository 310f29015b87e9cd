//! Turning the time formats found in exports into integer Unix seconds; a time without a zone
//! is UTC, or local time in the zone a mapping names.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde_json::Value;

/// The formats `created_at` accepts, quoted in every error about it.
pub const ACCEPTED: &str = "accepted: Unix seconds (up to 12 digits), Unix milliseconds (13 digits), \
an RFC 3339 / ISO 8601 datetime such as 2024-05-01T13:45:00Z (no zone = UTC), or a date YYYY-MM-DD (UTC)";

/// Parses a timestamp written as text into Unix seconds (a time without a zone is UTC). A
/// date such as `07/03/2019` is refused with the mapping option that reads it
/// (`[columns.created_at]`'s `format`), day first or month first.
pub fn parse_str(text: &str) -> Result<i64, String> {
    parse_plain(text, None).map_err(|e| match numeric_date(text) {
        Some(d) => format!(
            "{e}; {}",
            d.hint("[columns.created_at] type = \"timestamp\", ")
        ),
        None => e,
    })
}

/// A date written in numbers, day and month in an order the text itself may not tell:
/// `07/03/2019`, `14.11.2023`, `3-7-19`, optionally followed by a time (`13:45`, `13:45:10`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NumericDate {
    /// The first number (a day, or a month).
    pub first: u32,
    /// The second number (a month, or a day).
    pub second: u32,
    /// The separator: `/`, `.` or `-`.
    pub sep: char,
    /// The year has four digits (else two).
    pub year4: bool,
    /// The time after the date, as a format: `""`, `" %H:%M"` or `" %H:%M:%S"`.
    pub time: &'static str,
}

/// Which order a date's day and month are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DayMonth {
    /// Day first (most of the world): 07/03/2019 is 7 March.
    DayFirst,
    /// Month first (the United States): 07/03/2019 is July 3.
    MonthFirst,
    /// Nothing tells: both numbers are 12 or less.
    Either,
}

impl NumericDate {
    /// What this date alone says of the order.
    pub fn order(&self) -> DayMonth {
        match (self.first > 12, self.second > 12) {
            (true, false) => DayMonth::DayFirst,
            (false, true) => DayMonth::MonthFirst,
            _ => DayMonth::Either,
        }
    }

    /// The strftime format that reads dates like this one, day first or month first.
    pub fn format(&self, day_first: bool) -> String {
        let (a, b) = if day_first {
            ("%d", "%m")
        } else {
            ("%m", "%d")
        };
        let year = if self.year4 { "%Y" } else { "%y" };
        format!("{a}{s}{b}{s}{year}{}", self.time, s = self.sep)
    }

    /// How to read such dates: the mapping's `format`, day first or month first, and that the
    /// text alone may not tell which. `section` starts the option (`[columns.x] ...`).
    pub fn hint(&self, section: &str) -> String {
        let (day, month) = (self.format(true), self.format(false));
        let which = match self.order() {
            DayMonth::DayFirst => "this one can only be day first, but check the others",
            DayMonth::MonthFirst => "this one can only be month first, but check the others",
            DayMonth::Either => "day first and month first are ambiguous here",
        };
        format!(
            "to read dates like this, name their format in the mapping: {section}format = \"{day}\" \
(day first) or \"{month}\" (month first); {which}"
        )
    }
}

/// Reads `text` as a [`NumericDate`], if it is one.
pub fn numeric_date(text: &str) -> Option<NumericDate> {
    let t = text.trim();
    let (date, time) = match t.split_once(' ') {
        Some((d, rest)) => (d, rest.trim()),
        None => (t, ""),
    };
    let sep = date.chars().find(|c| matches!(c, '/' | '.' | '-'))?;
    let parts: Vec<&str> = date.split(sep).collect();
    let digits =
        |p: &str, lens: &[usize]| lens.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 3
        || !digits(parts[0], &[1, 2])
        || !digits(parts[1], &[1, 2])
        || !digits(parts[2], &[2, 4])
    {
        return None;
    }
    let first: u32 = parts[0].parse().ok()?;
    let second: u32 = parts[1].parse().ok()?;
    if first == 0 || second == 0 || first > 31 || second > 31 || (first > 12 && second > 12) {
        return None;
    }
    let time = match time.split(':').collect::<Vec<_>>().as_slice() {
        [""] => "",
        [h, m] if digits(h, &[1, 2]) && digits(m, &[2]) => " %H:%M",
        [h, m, s] if digits(h, &[1, 2]) && digits(m, &[2]) && digits(s, &[2]) => " %H:%M:%S",
        _ => return None,
    };
    Some(NumericDate {
        first,
        second,
        sep,
        year4: parts[2].len() == 4,
        time,
    })
}

/// Parses a timestamp written as text into Unix seconds, reading a time without a zone (and a
/// date alone, at midnight) as local time in `zone`, UTC when `None`. Unix seconds and times
/// with an offset are already absolute and stay as they are.
pub fn parse_str_in(text: &str, zone: Option<Tz>) -> Result<i64, String> {
    parse_plain(text, zone).map_err(|e| match numeric_date(text) {
        Some(d) => format!("{e}; {}", d.hint("this column's section, ")),
        None => e,
    })
}

/// [`parse_str_in`] without the hint for numeric dates.
fn parse_plain(text: &str, zone: Option<Tz>) -> Result<i64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("empty timestamp; {ACCEPTED}"));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return from_digits(s);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(dt.timestamp());
    }
    // ISO 8601 with an offset but a space instead of the `T`, or without seconds.
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%d %H:%M%:z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Ok(dt.timestamp());
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return local_seconds(dt, zone, s);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(dt) = d.and_hms_opt(0, 0, 0) {
            return local_seconds(dt, zone, s);
        }
    }
    Err(match zone {
        None => format!("'{}' is not a timestamp; {ACCEPTED}", shorten(s)),
        Some(tz) => format!(
            "'{}' is not a timestamp; {ACCEPTED} (here a time without a zone is read in {tz})",
            shorten(s)
        ),
    })
}

/// Unix seconds of a time without a zone, read as local time in `zone` (UTC when `None`).
/// A time that a daylight-saving change skips is an error naming `text`; one it repeats is
/// the earlier of the two.
pub fn local_seconds(naive: NaiveDateTime, zone: Option<Tz>, text: &str) -> Result<i64, String> {
    match zone {
        None => Ok(naive.and_utc().timestamp()),
        Some(tz) => tz
            .from_local_datetime(&naive)
            .earliest()
            .map(|d| d.timestamp())
            .ok_or_else(|| {
                format!(
                    "'{}' does not exist in {tz} (a daylight-saving gap): correct the time",
                    shorten(text)
                )
            }),
    }
}

/// Parses a JSON value (number or string) into Unix seconds.
pub fn parse_json(value: &Value) -> Result<i64, String> {
    match value {
        Value::String(s) => parse_str(s),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                from_digits(&u.to_string())
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite() && *f >= 0.0) {
                // A fractional number of seconds (as some exports write) loses its fraction.
                from_digits(&(f.trunc() as u64).to_string())
            } else {
                Err(format!("{n} is not a timestamp (negative); {ACCEPTED}"))
            }
        }
        other => Err(format!(
            "a JSON {} is not a timestamp; {ACCEPTED}",
            json_kind(other)
        )),
    }
}

fn from_digits(s: &str) -> Result<i64, String> {
    let n: i64 = s
        .parse()
        .map_err(|_| format!("'{}' is too large for a timestamp; {ACCEPTED}", shorten(s)))?;
    match s.len() {
        0..=12 => Ok(n),
        13 => Ok(n / 1000),
        _ => Err(format!(
            "'{}' has {} digits: neither seconds nor milliseconds; {ACCEPTED}",
            shorten(s),
            s.len()
        )),
    }
}

/// The name of a JSON value's type, for messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn shorten(s: &str) -> String {
    if s.len() <= 60 {
        return s.to_string();
    }
    let mut end = 60;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_every_documented_form() {
        assert_eq!(parse_str("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_str("1700000000123"), Ok(1_700_000_000));
        assert_eq!(parse_str("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert_eq!(parse_str("2023-11-14T23:13:20+01:00"), Ok(1_700_000_000));
        assert_eq!(parse_str("2023-11-14T22:13:20.250Z"), Ok(1_700_000_000));
        assert_eq!(parse_str("2023-11-14 22:13:20"), Ok(1_700_000_000));
        assert_eq!(parse_str("2023-11-14T22:13:20"), Ok(1_700_000_000));
        assert_eq!(parse_str("2023-11-14"), Ok(1_699_920_000));
        assert_eq!(parse_json(&json!(1_700_000_000)), Ok(1_700_000_000));
        assert_eq!(parse_json(&json!(1_700_000_000_999u64)), Ok(1_700_000_000));
        assert_eq!(parse_json(&json!("2023-11-14")), Ok(1_699_920_000));
    }

    #[test]
    fn a_zone_applies_to_every_time_without_one() {
        let ny = Some(chrono_tz::America::New_York);
        // 2024-05-01 12:00 in New York (UTC-4) is 16:00 UTC.
        assert_eq!(parse_str_in("2024-05-01 12:00:00", ny), Ok(1_714_579_200));
        assert_eq!(parse_str_in("2024-05-01T12:00", ny), Ok(1_714_579_200));
        assert_eq!(parse_str_in("2024-05-01", ny), Ok(1_714_536_000));
        // Absolute forms ignore the zone.
        assert_eq!(parse_str_in("2024-05-01T12:00:00Z", ny), Ok(1_714_564_800));
        assert_eq!(
            parse_str_in("2024-05-01T14:00:00+02:00", ny),
            Ok(1_714_564_800)
        );
        assert_eq!(parse_str_in("1714564800", ny), Ok(1_714_564_800));
        let e = parse_str_in("2024-03-10 02:30:00", ny).unwrap_err();
        assert!(e.contains("daylight-saving"), "{e}");
        let e = parse_str_in("soon", ny).unwrap_err();
        assert!(
            e.contains("accepted:") && e.contains("America/New_York"),
            "{e}"
        );
    }

    #[test]
    fn a_slash_date_names_the_mapping_format_and_the_ambiguity() {
        let e = parse_str("07/03/2019").unwrap_err();
        assert!(e.contains("accepted:"), "{e}");
        assert!(
            e.contains(r#"[columns.created_at] type = "timestamp", format = "%d/%m/%Y" (day first) or "%m/%d/%Y" (month first)"#),
            "{e}"
        );
        assert!(e.contains("day first and month first are ambiguous"), "{e}");
        let e = parse_str("14.11.23 13:45").unwrap_err();
        assert!(e.contains(r#"format = "%d.%m.%y %H:%M""#), "{e}");
        assert!(e.contains("can only be day first"), "{e}");
        assert_eq!(numeric_date("2019-03-07"), None);
        assert_eq!(numeric_date("13/14/2019"), None);
        assert_eq!(
            numeric_date("7/3/2019").map(|d| d.order()),
            Some(DayMonth::Either)
        );
        assert_eq!(
            numeric_date("7/13/2019").map(|d| d.order()),
            Some(DayMonth::MonthFirst)
        );
        // What the hint says reads the date.
        let d = numeric_date("07/03/2019 08:30:00").unwrap();
        let naive = NaiveDateTime::parse_from_str("07/03/2019 08:30:00", &d.format(true)).unwrap();
        assert_eq!(naive.to_string(), "2019-03-07 08:30:00");
        // A mapping's timestamp column gets the hint too, without created_at's section.
        let e = parse_str_in("07/03/2019", Some(chrono_tz::UTC)).unwrap_err();
        assert!(
            e.contains(r#"this column's section, format = "%d/%m/%Y""#),
            "{e}"
        );
    }

    #[test]
    fn rejects_the_rest_and_says_what_is_accepted() {
        for bad in [
            "yesterday",
            "14/11/2023",
            "17000000001234",
            "2023-13-01",
            "",
        ] {
            let e = parse_str(bad).unwrap_err();
            assert!(e.contains("accepted:"), "{bad}: {e}");
        }
        assert!(parse_json(&json!(true)).is_err());
        assert!(parse_json(&json!(-5)).is_err());
    }
}
