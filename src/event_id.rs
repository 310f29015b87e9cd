//! Event ids: the ULID every event carries so that Customer.io, which ignores an event whose
//! id it has already received, never stores it twice.
//!
//! A file's own id is used when it is a valid ULID ([`from_file`]); otherwise one is derived
//! from the event itself ([`derive()`]): the event's time in the ULID's time part, and a hash of
//! the workspace, the person, the name, the time and the data in its 80 random bits. The same
//! event in the same workspace always gets the same id, so re-importing a file adds nothing;
//! the same file sent to another workspace gets other ids.
//!
//! A ULID is 128 bits written as 26 characters of Crockford's base32 (`0-9A-Z` without
//! `I`, `L`, `O`, `U`): 48 bits of Unix milliseconds, then 80 bits. Text order is time order.

use crate::record::Identifier;
use ulid::Ulid;

/// The largest time part a ULID holds: 2^48 - 1 milliseconds (the year 10889).
pub const MAX_TIME_MS: u64 = (1 << 48) - 1;

/// Length of a ULID's text.
pub const ULID_LEN: usize = 26;

/// Tags the hashed bytes, so that a change of the encoding below is a change of this tag and
/// never a silent change of every derived id.
const DOMAIN: &[u8] = b"cio-import event id v1";

/// `s` as a ULID in canonical (upper-case) form, or `None` when it is not one: exactly 26
/// characters of Crockford's base32, either case, the first at most `7` (a larger one would
/// overflow 128 bits). Nothing is trimmed: this is the check the API's side makes.
pub fn normalize(s: &str) -> Option<String> {
    if s.len() != ULID_LEN || !matches!(s.as_bytes()[0], b'0'..=b'7') {
        return None;
    }
    Ulid::from_string(s).ok().map(|u| u.to_string())
}

/// The id a file gives an event, if it is a valid ULID (see [`normalize`]; surrounding
/// whitespace, as a CSV cell may carry, is ignored), in canonical upper case. `None` means
/// the event gets a [`derive()`]d id instead.
pub fn from_file(s: &str) -> Option<String> {
    normalize(s.trim())
}

/// The ULID time part for an event at `timestamp_s` (Unix seconds): its milliseconds,
/// clamped to the range a ULID holds. A time before 1970 (or 0, which callers pass for an
/// event without a time) gives 0.
pub fn time_part_ms(timestamp_s: i64) -> u64 {
    if timestamp_s <= 0 {
        return 0;
    }
    (timestamp_s as u64).saturating_mul(1000).min(MAX_TIME_MS)
}

/// A deterministic id for an event: time part [`time_part_ms`]`(timestamp_s)` (pass 0 for
/// an event without a time), random part the low 80 bits of xxh3-128 over a length-prefixed
/// encoding of `workspace` (whatever tells workspaces apart for the caller, e.g. the site id),
/// the person's identifier kind and value, `name`, `timestamp_s` itself (so that times the
/// clamp folds together still differ) and `data_canonical` (the event's data in one fixed
/// serialization: the caller's choice, the same on every run).
///
/// Two events that agree in all of these get the same id, and Customer.io keeps one of
/// them: a file that lists the very same event twice is deduplicated too.
pub fn derive(
    workspace: &str,
    person: &Identifier,
    name: &str,
    timestamp_s: i64,
    data_canonical: &[u8],
) -> String {
    let fields: [&[u8]; 6] = [
        DOMAIN,
        workspace.as_bytes(),
        person.kind.as_str().as_bytes(),
        person.value.as_bytes(),
        name.as_bytes(),
        data_canonical,
    ];
    let mut buf = Vec::with_capacity(fields.iter().map(|f| f.len() + 8).sum::<usize>() + 8);
    for f in fields {
        buf.extend_from_slice(&(f.len() as u64).to_le_bytes());
        buf.extend_from_slice(f);
    }
    buf.extend_from_slice(&timestamp_s.to_le_bytes());
    let hash = xxhash_rust::xxh3::xxh3_128(&buf);
    // from_parts keeps the low 80 bits of the random part.
    Ulid::from_parts(time_part_ms(timestamp_s), hash).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::IdKind;

    fn id(v: &str) -> Identifier {
        Identifier {
            kind: IdKind::Id,
            value: v.into(),
        }
    }

    fn base() -> String {
        derive(
            "site-1",
            &id("42"),
            "purchase",
            1_700_000_000,
            br#"{"amount":12.5}"#,
        )
    }

    /// A regression pin: the encoding, the hash and the ULID text must never drift, or a
    /// re-import after an upgrade would double every event.
    #[test]
    fn a_fixed_event_keeps_a_fixed_id() {
        assert_eq!(base(), "01HF7YAT00DD57EY837JXWFH3B");
        assert_eq!(base(), base());
        assert_eq!(&base()[..10], "01HF7YAT00", "time part = 1700000000000 ms");
        assert_eq!(
            Ulid::from_string(&base()).unwrap().timestamp_ms(),
            1_700_000_000_000
        );
    }

    #[test]
    fn every_input_changes_the_id() {
        let b = base();
        let data = br#"{"amount":12.5}"#;
        let others = [
            derive("site-2", &id("42"), "purchase", 1_700_000_000, data),
            derive("site-1", &id("43"), "purchase", 1_700_000_000, data),
            derive(
                "site-1",
                &Identifier {
                    kind: IdKind::Email,
                    value: "42".into(),
                },
                "purchase",
                1_700_000_000,
                data,
            ),
            derive("site-1", &id("42"), "purchasE", 1_700_000_000, data),
            derive("site-1", &id("42"), "purchase", 1_700_000_001, data),
            derive("site-1", &id("42"), "purchase", 1_700_000_000, b"{}"),
            // Shifting bytes between fields is not the same input (length prefixes).
            derive("site-14", &id("2"), "purchase", 1_700_000_000, data),
            derive(
                "site-1",
                &id("42"),
                "purchase{",
                1_700_000_000,
                b"\"amount\":12.5}",
            ),
        ];
        for o in &others {
            assert_ne!(o, &b);
            assert_eq!(o.len(), ULID_LEN);
            assert_eq!(normalize(o).as_deref(), Some(o.as_str()));
        }
        // Times that clamp to the same time part still differ.
        assert_ne!(
            derive("w", &id("1"), "e", -5, b""),
            derive("w", &id("1"), "e", -6, b"")
        );
    }

    #[test]
    fn ids_sort_by_time() {
        let times = [-100, 0, 1, 59, 1_000_000_000, 1_700_000_000, 1_700_000_001];
        let ids: Vec<String> = times
            .iter()
            .map(|t| derive("w", &id("1"), "e", *t, b"{}"))
            .collect();
        for pair in ids.windows(2).skip(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
        assert!(ids[0].starts_with("0000000000") && ids[1].starts_with("0000000000"));
        // Far future: clamped to the largest time part, still a valid ULID.
        let far = derive("w", &id("1"), "e", i64::MAX, b"{}");
        assert!(far.starts_with("7ZZZZZZZZZ"), "{far}");
        assert_eq!(normalize(&far).as_deref(), Some(far.as_str()));
    }

    #[test]
    fn validation_accepts_ulids_and_rejects_the_rest() {
        let ok = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
        assert_eq!(from_file(ok).as_deref(), Some(ok));
        assert_eq!(
            from_file("01arz3ndektsv4rrffq69g5fav").as_deref(),
            Some(ok),
            "lower case is normalised"
        );
        assert_eq!(
            from_file(" 01ARZ3NDEKTSV4RRFFQ69G5FAV\t").as_deref(),
            Some(ok)
        );
        assert_eq!(
            normalize(" 01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            None,
            "strict: no trim"
        );
        assert_eq!(
            from_file("7ZZZZZZZZZZZZZZZZZZZZZZZZZ").as_deref(),
            Some("7ZZZZZZZZZZZZZZZZZZZZZZZZZ")
        );
        assert_eq!(
            from_file("00000000000000000000000000").as_deref(),
            Some("00000000000000000000000000")
        );
        for bad in [
            "",
            "01ARZ3NDEKTSV4RRFFQ69G5FA",   // 25
            "01ARZ3NDEKTSV4RRFFQ69G5FAVX", // 27
            "01ARZ3NDEKTSV4RRFFQ69G5FAI",  // I
            "01ARZ3NDEKTSV4RRFFQ69G5FAL",  // L
            "01ARZ3NDEKTSV4RRFFQ69G5FAO",  // O
            "01ARZ3NDEKTSV4RRFFQ69G5FAU",  // U
            "01ARZ3NDEKTSV4RRFFQ69G5FA-",
            "8ZZZZZZZZZZZZZZZZZZZZZZZZZ", // overflows 128 bits
            "ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
            "01ARZ3NDEKTSV4RRFFQ69G5FÄ", // 26 bytes, not 26 characters of the alphabet
            "550e8400-e29b-41d4-a716-446655440000",
        ] {
            assert_eq!(from_file(bad), None, "{bad:?}");
        }
    }
}
