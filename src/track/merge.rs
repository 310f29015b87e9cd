//! Merge payloads (`--kind merges`): v1 `POST /api/v1/merge_customers` with
//! `{"primary":{"id":..},"secondary":{"email":..}}`, and the v2 operation (schema
//! `person_merge`) `{"type":"person","action":"merge","primary":{..},"secondary":{..}}`, which
//! has no `identifiers`. Each side holds exactly one of `id`, `email`, `cio_id` (without the
//! `cio_` prefix, as in v2 identifiers).

use super::{write_json_str, Api};
use crate::record::Identifier;

/// The v1 path of a merge.
pub const V1_MERGE_PATH: &str = "/api/v1/merge_customers";

fn side(buf: &mut Vec<u8>, id: &Identifier) {
    buf.push(b'{');
    write_json_str(buf, id.kind.as_str());
    buf.push(b':');
    write_json_str(buf, &id.value);
    buf.push(b'}');
}

/// The payload that merges `secondary` into `primary`.
pub fn merge_payload(api: Api, primary: &Identifier, secondary: &Identifier) -> Vec<u8> {
    let mut buf = Vec::with_capacity(96 + primary.value.len() + secondary.value.len());
    match api {
        Api::V1 => buf.extend_from_slice(br#"{"primary":"#),
        Api::Batch => buf.extend_from_slice(br#"{"type":"person","action":"merge","primary":"#),
    }
    side(&mut buf, primary);
    buf.extend_from_slice(br#","secondary":"#);
    side(&mut buf, secondary);
    buf.push(b'}');
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::IdKind;
    use serde_json::{json, Value};

    #[test]
    fn merge_payloads_follow_the_schemas() {
        let p = Identifier {
            kind: IdKind::Id,
            value: "1".into(),
        };
        let s = Identifier {
            kind: IdKind::Email,
            value: "x@y.io".into(),
        };
        let v2: Value = serde_json::from_slice(&merge_payload(Api::Batch, &p, &s)).unwrap();
        assert_eq!(
            v2,
            json!({"type":"person","action":"merge","primary":{"id":"1"},"secondary":{"email":"x@y.io"}})
        );
        let v1: Value = serde_json::from_slice(&merge_payload(Api::V1, &p, &s)).unwrap();
        assert_eq!(
            v1,
            json!({"primary":{"id":"1"},"secondary":{"email":"x@y.io"}})
        );
    }
}
