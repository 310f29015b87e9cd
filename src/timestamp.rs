//! Turning the time formats found in exports into integer Unix seconds; a time without a zone
//! is UTC, or local time in the zone a mapping names.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde_json::Value;

/// The formats `created_at` accepts, quoted in every error about it.
pub const ACCEPTED: &str = "accepted: Unix seconds (up to 12 digits), Unix milliseconds (13 digits), \
an RFC 3339 / ISO 8601 datetime such as 2024-05-01T13:45:00Z (no zone = UTC), or a date YYYY-MM-DD (UTC)";

/// Parses a timestamp written as text into Unix seconds (a time without a zone is UTC).
pub fn parse_str(text: &str) -> Result<i64, String> {
    parse_str_in(text, None)
}

/// Parses a timestamp written as text into Unix seconds, reading a time without a zone (and a
/// date alone, at midnight) as local time in `zone`, UTC when `None`. Unix seconds and times
/// with an offset are already absolute and stay as they are.
pub fn parse_str_in(text: &str, zone: Option<Tz>) -> Result<i64, String> {
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
