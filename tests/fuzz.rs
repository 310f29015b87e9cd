//! Property tests at scale over the readers and the row-to-operation conversion: arbitrary
//! bytes in, no panic out; every converted row is valid JSON within the API's limits; every
//! item read is a row or a bad row. `PROPTEST_CASES=200000 cargo test --release --test fuzz`
//! is the long run (see README); CI runs the default number of cases.

use cio_import::convert::{ConvertOptions, Converter};
use cio_import::mapping::Mapping;
use cio_import::record::IdKind;
use cio_import::source::{Format, Item, Opened, Rows};
use cio_import::track::Api;
use proptest::prelude::*;
use std::io::Cursor;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Bytes that make CSV and JSON interesting: delimiters, quotes, line ends, braces, escapes,
/// multi-byte and invalid UTF-8, a BOM, NUL.
fn tricky_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b",".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b":".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"[".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"\xff".to_vec()),
        Just(b"\0".to_vec()),
        Just("é".as_bytes().to_vec()),
        Just(b"\"id\"".to_vec()),
        Just(b"id".to_vec()),
        Just(b"created_at".to_vec()),
        Just(b"2023-11-14".to_vec()),
        Just(b"1700000000123".to_vec()),
        Just(b"null".to_vec()),
        "[a-z0-9 ]{0,12}".prop_map(|s| s.into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..80).prop_map(|v| v.concat())
}

fn check(
    data: &[u8],
    format: Format,
    api: Api,
    mapping: Option<Arc<Mapping>>,
) -> Result<(), TestCaseError> {
    let opened = Opened {
        reader: Box::new(Cursor::new(data.to_vec())),
        total_bytes: Some(data.len() as u64),
        bytes_read: Arc::new(AtomicU64::new(0)),
        digest: Default::default(),
    };
    let Ok(mut rows) = Rows::new(opened, format, b',', "fuzz") else {
        return Ok(()); // a header problem is a clean, reported error
    };
    let header = rows.csv_header().map(|h| h.names.clone());
    let mut opts = ConvertOptions::new(IdKind::Id, "id", api);
    opts.hash = true;
    opts.mapping = mapping;
    let Ok(converter) = Converter::new(opts, header.as_deref()) else {
        return Ok(());
    };
    let mut last_row = 0;
    while let Some(item) = rows.next() {
        let Ok(item) = item else { break };
        let (pos, raw) = match item {
            Item::Bad { pos, .. } => {
                prop_assert!(pos.row > last_row);
                last_row = pos.row;
                continue;
            }
            Item::Row { pos, raw } => (pos, raw),
        };
        prop_assert!(pos.row > last_row && pos.line >= 1);
        last_row = pos.row;
        if let Ok(rec) = converter.convert(pos, raw) {
            let v: serde_json::Value = serde_json::from_slice(&rec.payload).map_err(|e| {
                TestCaseError::fail(format!(
                    "payload is not JSON: {e}: {:?}",
                    String::from_utf8_lossy(&rec.payload)
                ))
            })?;
            prop_assert!(v.is_object());
            prop_assert!(
                !rec.identifier.value.trim().is_empty() && rec.identifier.value.len() <= 150
            );
            if api == Api::Batch {
                prop_assert!(rec.payload.len() <= 32_000);
                prop_assert_eq!(
                    v["identifiers"]["id"].as_str(),
                    Some(rec.identifier.value.as_str())
                );
            }
            let _ = rows.compact(rec.raw);
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_csv_never_panics_and_converts_to_valid_operations(data in tricky_bytes()) {
        let mut input = b"id,n,created_at\n".to_vec();
        input.extend(&data);
        check(&input, Format::Csv, Api::Batch, None)?;
        check(&input, Format::Csv, Api::V1, None)?;
        check(&data, Format::Csv, Api::Batch, None)?;
    }

    #[test]
    fn arbitrary_jsonl_never_panics_and_converts_to_valid_operations(data in tricky_bytes()) {
        let mut input = b"{\"id\":\"1\",\"n\":".to_vec();
        input.extend(&data);
        check(&input, Format::Jsonl, Api::Batch, None)?;
        check(&data, Format::Jsonl, Api::V1, None)?;
        let m = Mapping::parse("[options]\nflatten = \".\"\n[columns.n]\ntype = \"integer\"\n", "fuzz").unwrap();
        check(&input, Format::Jsonl, Api::Batch, Some(Arc::new(m)))?;
    }

    #[test]
    fn arbitrary_csv_through_every_preset_never_panics(data in tricky_bytes(), which in 0usize..7) {
        let p = &cio_import::mapping::PRESETS[which];
        let m = Arc::new(Mapping::parse(p.text, p.name).unwrap());
        let mut input = b"id,Email,email,Email Address,EMAIL,OPTIN_TIME,Create Date,user_id,UNSUB_TIME\n".to_vec();
        input.extend(&data);
        check(&input, Format::Csv, Api::Batch, Some(m))?;
    }
}
