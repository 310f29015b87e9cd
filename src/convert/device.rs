//! Devices (`--kind devices`): one row is one push device of one person. The person follows
//! the people rules (`--id-column`, `--identify-by`, a mapping); the device token is the
//! column `token`, its platform the column `platform` (`ios` or `android`, any case: Braze's
//! `Android` is sent as `android`), `last_used` (optional) is converted to Unix seconds like
//! `created_at`, and every other column is a device attribute (a string, as the schema
//! declares: numbers and booleans are sent as their text). With `--action delete` a row
//! removes the device (`delete_device`) and needs only the person and the token.
//!
//! Limits: the schemas declare none for tokens or device attributes; the person limits apply
//! to device attributes by analogy (the docs call them "like a person's attributes"): names
//! at most 150 bytes, values at most 1000 bytes, at most 300 of them; a batch operation at
//! most 32,000 bytes.

use super::{canon_json, invalid, Converter, Invalid};
use crate::operation::{Action, Entity, Operation, Target};
use crate::record::{Identifier, Position, RawRow};
use crate::timestamp;
use crate::track::device::{add_device_payload, delete_device_payload, Device};
use crate::track::Api;
use crate::validate;
use serde_json::{Map, Value};

/// The column of the device token.
pub const TOKEN_COLUMN: &str = "token";
/// The column of the platform.
pub const PLATFORM_COLUMN: &str = "platform";
/// The column of the time the device was last used.
pub const LAST_USED_COLUMN: &str = "last_used";

/// The platforms the Track API takes.
pub const PLATFORMS: [&str; 2] = ["ios", "android"];

/// One converted device.
struct Built {
    identifier: Identifier,
    token: String,
    payload: Vec<u8>,
    attributes: usize,
    hash: Option<[u8; 16]>,
}

/// A cell as text: strings trimmed, numbers and booleans as written.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Converter {
    /// Converts one row into an `add_device` or `delete_device` operation.
    pub(super) fn convert_device(
        &self,
        pos: Position,
        raw: RawRow,
    ) -> Result<Operation, (Invalid, RawRow)> {
        match self.build_device(&raw) {
            Ok(b) => Ok(Operation {
                pos,
                entity: Entity::Person,
                action: self.opts.action,
                identifier: b.identifier,
                event_id: None,
                attributes: b.attributes,
                payload: b.payload,
                raw,
                hash: b.hash,
                attrs: None,
                object: None,
                conditional: false,
                forget_first: false,
                target: Some(Target::Device(b.token.into_boxed_str())),
            }),
            Err(inv) => Err((inv, raw)),
        }
    }

    fn build_device(&self, raw: &RawRow) -> Result<Built, Invalid> {
        let (identifier, values) = match raw {
            RawRow::Csv(rec) => self.event_csv(rec)?,
            RawRow::Line(line) => self.event_jsonl(line)?,
            RawRow::CsvBytes(_) | RawRow::CsvLine(_) => {
                return Err(invalid(None, None, "not a readable CSV row".into()))
            }
        };
        let who = Some(identifier.value.as_str());
        let mut token = None;
        let mut platform = None;
        let mut last_used = None;
        let mut attributes = Map::new();
        for (k, v) in values {
            if v.is_null() {
                continue;
            }
            match k.as_str() {
                TOKEN_COLUMN => token = Some(v),
                PLATFORM_COLUMN => platform = Some(v),
                LAST_USED_COLUMN => last_used = Some(v),
                _ => {
                    let Some(s) = text(&v) else {
                        return Err(invalid(
                            who,
                            Some(&k),
                            format!(
                                "device attribute '{k}' is a JSON {}: device attributes are \
strings (or numbers and booleans, sent as text); flatten or drop it",
                                timestamp::json_kind(&v)
                            ),
                        ));
                    };
                    if s.is_empty() {
                        continue;
                    }
                    let s = Value::String(s);
                    validate::attribute_name(&k)
                        .and_then(|_| validate::attribute_value(&k, &s))
                        .map_err(|violation| Invalid {
                            identifier: Some(identifier.value.clone()),
                            violation,
                        })?;
                    attributes.insert(k, s);
                }
            }
        }
        let missing = || {
            invalid(
                who,
                Some(TOKEN_COLUMN),
                format!(
                    "device token '{TOKEN_COLUMN}' is missing or empty: add it (a mapping can \
rename another column to {TOKEN_COLUMN})"
                ),
            )
        };
        let token = match &token {
            None => return Err(missing()),
            Some(v) => match text(v) {
                Some(t) if !t.is_empty() => t,
                Some(_) => return Err(missing()),
                None => {
                    return Err(invalid(
                        who,
                        Some(TOKEN_COLUMN),
                        format!(
                            "device token '{TOKEN_COLUMN}' is a JSON {}: it must be a string",
                            timestamp::json_kind(v)
                        ),
                    ))
                }
            },
        };
        if self.opts.action == Action::DeleteDevice {
            return Ok(Built {
                payload: delete_device_payload(self.opts.api, &identifier, &token),
                identifier,
                token,
                attributes: 0,
                hash: None,
            });
        }
        let platform = match platform.as_ref().and_then(text) {
            Some(p) if PLATFORMS.contains(&p.to_ascii_lowercase().as_str()) => {
                p.to_ascii_lowercase()
            }
            Some(p) if !p.is_empty() => {
                return Err(invalid(
                    who,
                    Some(PLATFORM_COLUMN),
                    format!(
                        "platform '{p}' is not ios or android (any case): Customer.io takes \
push devices of these two platforms only; fix or drop the row"
                    ),
                ))
            }
            _ => {
                return Err(invalid(
                    who,
                    Some(PLATFORM_COLUMN),
                    format!(
                        "platform '{PLATFORM_COLUMN}' is missing or empty: give ios or android"
                    ),
                ))
            }
        };
        let last_used = match &last_used {
            None => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(timestamp::parse_str(s)),
            Some(v) => Some(timestamp::parse_json(v)),
        }
        .transpose()
        .map_err(|m| {
            invalid(
                who,
                Some(LAST_USED_COLUMN),
                format!("'{LAST_USED_COLUMN}': {m}"),
            )
        })?;
        validate::attribute_count(&attributes).map_err(|violation| Invalid {
            identifier: Some(identifier.value.clone()),
            violation,
        })?;
        let payload = add_device_payload(
            self.opts.api,
            &identifier,
            &Device {
                token: &token,
                platform: &platform,
                last_used,
                attributes: &attributes,
            },
        );
        if self.opts.api == Api::Batch {
            validate::operation_size(payload.len()).map_err(|v| Invalid {
                identifier: Some(identifier.value.clone()),
                violation: v,
            })?;
        }
        // The ledger's hash: the person the device is on and everything sent about it.
        let hash = self.opts.hash.then(|| {
            let mut canon = Vec::with_capacity(128);
            canon_json(
                &serde_json::json!({
                    "person": [identifier.kind.as_str(), identifier.value],
                    "platform": platform,
                    "last_used": last_used,
                    "attributes": attributes,
                }),
                &mut canon,
            );
            xxhash_rust::xxh3::xxh3_128(&canon).to_le_bytes()
        });
        Ok(Built {
            attributes: attributes.len(),
            identifier,
            token,
            payload,
            hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::ConvertOptions;
    use super::*;
    use crate::record::IdKind;
    use serde_json::json;

    fn conv(action: Action, api: Api, header: &[&str]) -> Converter {
        let opts = ConvertOptions {
            action,
            hash: true,
            ..ConvertOptions::new(IdKind::Id, "id", api)
        };
        let header: Vec<String> = header.iter().map(|s| s.to_string()).collect();
        Converter::new(opts, Some(&header)).unwrap()
    }
    const POS: Position = Position { row: 1, line: 2 };

    fn row(c: &Converter, cells: &[&str]) -> Result<Operation, (Invalid, RawRow)> {
        c.convert(POS, RawRow::Csv(csv::StringRecord::from(cells.to_vec())))
    }

    #[test]
    fn a_row_becomes_a_device_with_lowercase_platform_and_unix_last_used() {
        let c = conv(
            Action::AddDevice,
            Api::Batch,
            &["id", "token", "platform", "last_used", "app_version"],
        );
        let op = row(&c, &["7", "abc", "Android", "2024-05-01T12:00:00Z", "3"]).unwrap();
        assert_eq!(op.device_token(), Some("abc"));
        let v: Value = serde_json::from_slice(&op.payload).unwrap();
        assert_eq!(
            v,
            json!({"type":"person","identifiers":{"id":"7"},"action":"add_device","device":{"token":"abc","platform":"android","last_used":1_714_564_800,"attributes":{"app_version":"3"}}})
        );
        assert!(op.hash.is_some());
        let (e, _) = row(&c, &["7", "abc", "web", "", ""]).unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("platform"));
        let (e, _) = row(&c, &["7", "", "ios", "", ""]).unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("token"));
        let (e, _) = row(&c, &["7", "abc", "ios", "soon", ""]).unwrap_err();
        assert_eq!(e.violation.field.as_deref(), Some("last_used"));
        // The same device on another person hashes differently.
        let a = row(&c, &["7", "abc", "ios", "", ""]).unwrap().hash;
        let b = row(&c, &["8", "abc", "ios", "", ""]).unwrap().hash;
        assert_ne!(a, b);
    }

    #[test]
    fn a_delete_needs_only_the_person_and_the_token() {
        let c = conv(Action::DeleteDevice, Api::Batch, &["id", "token"]);
        let op = row(&c, &["7", "abc"]).unwrap();
        assert_eq!(op.hash, None);
        let v: Value = serde_json::from_slice(&op.payload).unwrap();
        assert_eq!(v["action"], "delete_device");
        assert_eq!(v["device"], json!({"token":"abc"}));
    }
}
