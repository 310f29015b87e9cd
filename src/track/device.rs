//! Device payloads (`--kind devices`), as the Track API's schemas spell them: v1
//! `PUT /api/v1/customers/{id}/devices` with `{"device":{"id":TOKEN,"platform":..,
//! "last_used":..,"attributes":{..}}}` (schema `device_object`: the token is `id`), v1
//! `DELETE /api/v1/customers/{id}/devices/{token}` without a body, and the v2 operations
//! `add_device` (`{"type":"person","identifiers":{..},"action":"add_device","device":{"token":..,
//! "platform":..,"last_used":..,"attributes":{..}}}`, schema `person_add_device`: the token is
//! `token`) and `delete_device` (`"device":{"token":..}`, schema `person_delete_device`).

use super::{write_json_str, Api, PATH_SEGMENT};
use crate::record::Identifier;
use percent_encoding::utf8_percent_encode;
use serde_json::{Map, Value};

/// A device to add: its token, platform (`ios` or `android`), when it was last used (Unix
/// seconds) and its attributes (strings, as the schema's `additionalProperties` declare).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device<'a> {
    /// The device token.
    pub token: &'a str,
    /// `ios` or `android`, lower case.
    pub platform: &'a str,
    /// When the device was last used, Unix seconds (left out: the API uses the request's time).
    pub last_used: Option<i64>,
    /// Device attributes (`device_os`, `app_version`, `push_enabled`, custom ones).
    pub attributes: &'a Map<String, Value>,
}

fn v2_head(buf: &mut Vec<u8>, id: &Identifier, action: &str) {
    buf.extend_from_slice(br#"{"type":"person","identifiers":{"#);
    write_json_str(buf, id.kind.as_str());
    buf.push(b':');
    write_json_str(buf, &id.value);
    buf.extend_from_slice(br#"},"action":"#);
    write_json_str(buf, action);
}

/// The payload of an `add_device` for the person `id`.
pub fn add_device_payload(api: Api, id: &Identifier, d: &Device) -> Vec<u8> {
    let mut buf = Vec::with_capacity(160 + d.token.len() + id.value.len());
    match api {
        Api::V1 => buf.extend_from_slice(br#"{"device":{"id":"#),
        Api::Batch => {
            v2_head(&mut buf, id, "add_device");
            buf.extend_from_slice(br#","device":{"token":"#);
        }
    }
    write_json_str(&mut buf, d.token);
    buf.extend_from_slice(br#","platform":"#);
    write_json_str(&mut buf, d.platform);
    if let Some(t) = d.last_used {
        buf.extend_from_slice(br#","last_used":"#);
        buf.extend_from_slice(t.to_string().as_bytes());
    }
    if !d.attributes.is_empty() {
        buf.extend_from_slice(br#","attributes":"#);
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut buf, d.attributes);
    }
    buf.extend_from_slice(b"}}");
    buf
}

/// The payload of a `delete_device`: empty for v1 (the path names the device), the v2
/// operation otherwise.
pub fn delete_device_payload(api: Api, id: &Identifier, token: &str) -> Vec<u8> {
    match api {
        Api::V1 => Vec::new(),
        Api::Batch => {
            let mut buf = Vec::with_capacity(96 + token.len() + id.value.len());
            v2_head(&mut buf, id, "delete_device");
            buf.extend_from_slice(br#","device":{"token":"#);
            write_json_str(&mut buf, token);
            buf.extend_from_slice(b"}}");
            buf
        }
    }
}

/// The v1 path of a person's device: `/api/v1/customers/{id}/devices/{token}`, both
/// segments fully percent-encoded.
pub fn v1_device_path(id: &Identifier, token: &str) -> String {
    format!(
        "{}/devices/{}",
        super::v1_customer_path(id),
        utf8_percent_encode(token, PATH_SEGMENT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::IdKind;
    use serde_json::json;

    #[test]
    fn device_payloads_follow_the_schemas() {
        let id = Identifier {
            kind: IdKind::Id,
            value: "42".into(),
        };
        let mut attributes = Map::new();
        attributes.insert("app_version".into(), json!("1.2"));
        let d = Device {
            token: "tok/1",
            platform: "ios",
            last_used: Some(1_700_000_000),
            attributes: &attributes,
        };
        let v1: Value = serde_json::from_slice(&add_device_payload(Api::V1, &id, &d)).unwrap();
        assert_eq!(
            v1,
            json!({"device":{"id":"tok/1","platform":"ios","last_used":1_700_000_000,"attributes":{"app_version":"1.2"}}})
        );
        let v2: Value = serde_json::from_slice(&add_device_payload(Api::Batch, &id, &d)).unwrap();
        assert_eq!(
            v2,
            json!({"type":"person","identifiers":{"id":"42"},"action":"add_device","device":{"token":"tok/1","platform":"ios","last_used":1_700_000_000,"attributes":{"app_version":"1.2"}}})
        );
        let del: Value =
            serde_json::from_slice(&delete_device_payload(Api::Batch, &id, "tok/1")).unwrap();
        assert_eq!(
            del,
            json!({"type":"person","identifiers":{"id":"42"},"action":"delete_device","device":{"token":"tok/1"}})
        );
        assert!(delete_device_payload(Api::V1, &id, "t").is_empty());
        assert_eq!(
            v1_device_path(&id, "tok/1"),
            "/api/v1/customers/42/devices/tok%2F1"
        );
    }
}
