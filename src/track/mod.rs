//! Every fact of the wire: payloads, v1 paths and methods, the v2 batch framing, the HTTP
//! client, and what each answer means. The engine reaches a destination only through the
//! [`Wire`] seam ([`wire`]); the Track API is [`TrackApi`] ([`track_api`]).

pub mod app;
pub mod batch;
pub mod client;
pub mod device;
pub mod error;
pub mod merge;
pub mod objects;
pub mod track_api;
pub mod wire;

pub use client::{ConnectError, Request, TrackClient};
pub use error::Answer;
pub use track_api::TrackApi;
pub use wire::{connect, Rejection, Verdict, Wire};

use crate::operation::{Action, Entity};
use crate::record::Identifier;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Which API carries the people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `POST /api/v2/batch`: many people per request (the default).
    Batch,
    /// `PUT /api/v1/customers/{identifier}`: one person per request.
    V1,
}

impl Api {
    /// The name used on the command line and in the summary: `batch` or `v1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Batch => "batch",
            Api::V1 => "v1",
        }
    }
}

/// Writes one operation's payload straight into bytes: the v1 body `{attributes}` or the
/// batch operation `{"type":"person","identifiers":{..},"action":"identify","attributes":{..}}`.
/// Attributes are appended one by one, so no intermediate map is built per row.
#[derive(Debug)]
pub struct PayloadWriter {
    api: Api,
    buf: Vec<u8>,
    attributes: usize,
    update_key: bool,
}

/// Appends `s` as a JSON string (quoted and escaped).
pub fn write_json_str(buf: &mut Vec<u8>, s: &str) {
    // Most values need no escaping: copy them whole.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.reserve(s.len() + 2);
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, s);
    }
}

/// The JSON text `"name":`, escaped once and reused for every row.
pub fn json_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 3);
    write_json_str(&mut k, name);
    k.push(b':');
    k
}

impl PayloadWriter {
    /// Starts the payload that identifies the person `id`.
    pub fn begin(api: Api, id: &Identifier, capacity: usize) -> PayloadWriter {
        PayloadWriter::begin_op(api, Entity::Person, Action::Identify, id, capacity)
    }

    /// Starts the payload of `action` on the `entity` addressed by `id`. The frame around the
    /// identifier is one static text per entity and action, so no action costs more than
    /// the identify of 0.1. The fields an action carries besides attributes (an event's
    /// name, id and timestamp) come with the converter that produces that action. Actions
    /// without attributes are written whole by [`bare_payload`].
    pub fn begin_op(
        api: Api,
        entity: Entity,
        action: Action,
        id: &Identifier,
        capacity: usize,
    ) -> PayloadWriter {
        let mut buf = Vec::with_capacity(capacity);
        match api {
            Api::V1 => buf.push(b'{'),
            Api::Batch => {
                let (head, tail) = v2_frame(entity, action);
                buf.extend_from_slice(head);
                write_json_str(&mut buf, id.kind.as_str());
                buf.push(b':');
                write_json_str(&mut buf, &id.value);
                buf.extend_from_slice(tail);
            }
        }
        PayloadWriter {
            api,
            buf,
            attributes: 0,
            update_key: false,
        }
    }

    /// Starts an attribute whose `"name":` text was prepared with [`json_key`].
    pub fn key_prepared(&mut self, key: &[u8]) {
        self.update_key |= key == br#""_update":"#;
        if self.attributes > 0 {
            self.buf.push(b',');
        }
        self.attributes += 1;
        self.buf.extend_from_slice(key);
    }

    /// Starts an attribute by name.
    pub fn key(&mut self, name: &str) {
        self.update_key |= name == "_update";
        if self.attributes > 0 {
            self.buf.push(b',');
        }
        self.attributes += 1;
        write_json_str(&mut self.buf, name);
        self.buf.push(b':');
    }

    /// A string value.
    pub fn str_value(&mut self, v: &str) {
        write_json_str(&mut self.buf, v);
    }

    /// An integer value.
    pub fn int_value(&mut self, v: i64) {
        let _ = serde_json::to_writer(&mut self.buf, &v);
    }

    /// Any JSON value.
    pub fn json_value(&mut self, v: &serde_json::Value) {
        let _ = serde_json::to_writer(&mut self.buf, v);
    }

    /// A value already in JSON text.
    pub fn raw_value(&mut self, json: &str) {
        self.buf.extend_from_slice(json.as_bytes());
    }

    /// Whether an attribute named `_update` was written (the send then never creates anyone).
    pub fn has_update_key(&self) -> bool {
        self.update_key
    }

    /// How many attributes were written.
    pub fn attributes(&self) -> usize {
        self.attributes
    }

    /// Closes the JSON and returns the payload.
    pub fn finish(mut self) -> Vec<u8> {
        match self.api {
            Api::V1 => self.buf.push(b'}'),
            Api::Batch => self.buf.extend_from_slice(b"}}"),
        }
        self.buf
    }
}

/// The v2 operation's text before and after its identifier, for each entity and action.
/// Identify and event go on with their attributes (the tail opens the `attributes` object);
/// delete, suppress and unsuppress carry nothing but the identifier (schemas `person_delete`,
/// `person_suppress`, `person_unsuppress`: `type`, `identifiers`, `action`), so their tail
/// ends the operation but for its closing brace.
fn v2_frame(entity: Entity, action: Action) -> (&'static [u8], &'static [u8]) {
    const HEAD: &[u8] = br#"{"type":"person","identifiers":{"#;
    match (entity, action) {
        (Entity::Person, Action::Identify) => (HEAD, br#"},"action":"identify","attributes":{"#),
        (Entity::Person, Action::Event) => (HEAD, br#"},"action":"event","attributes":{"#),
        (Entity::Person, Action::Delete) => (HEAD, br#"},"action":"delete""#),
        (Entity::Person, Action::Suppress) => (HEAD, br#"},"action":"suppress""#),
        (Entity::Person, Action::Unsuppress) => (HEAD, br#"},"action":"unsuppress""#),
        // Written whole by `device` and `merge`; these frames are never used.
        (Entity::Person, Action::AddDevice) => (HEAD, br#"},"action":"add_device""#),
        (Entity::Person, Action::DeleteDevice) => (HEAD, br#"},"action":"delete_device""#),
        (Entity::Person, Action::Merge) => (HEAD, br#"},"action":"merge""#),
        // Objects and relationships are written whole by `objects` (their identifiers are
        // not one `kind: value`); these frames are never used.
        (Entity::Person, Action::AddRelationships) => (HEAD, br#"},"action":"add_relationships""#),
        (Entity::Person, Action::DeleteRelationships) => {
            (HEAD, br#"},"action":"delete_relationships""#)
        }
        (Entity::Object, _) => (br#"{"type":"object","identifiers":{"#, br#"}"#),
    }
}

/// Whether `action` carries attributes (identify, event) or only its identifier (delete,
/// suppress, unsuppress).
pub fn carries_attributes(action: Action) -> bool {
    matches!(action, Action::Identify | Action::Event)
}

/// The whole payload of an action that carries only its identifier (delete, suppress,
/// unsuppress): the v2 operation `{"type":"person","identifiers":{..},"action":"delete"}`,
/// or for v1 an empty body (the method and path say everything).
pub fn bare_payload(api: Api, entity: Entity, action: Action, id: &Identifier) -> Vec<u8> {
    debug_assert!(!carries_attributes(action), "{action:?} carries attributes");
    match api {
        Api::V1 => Vec::new(),
        Api::Batch => {
            let (head, tail) = v2_frame(entity, action);
            let mut buf = Vec::with_capacity(head.len() + tail.len() + id.value.len() + 16);
            buf.extend_from_slice(head);
            write_json_str(&mut buf, id.kind.as_str());
            buf.push(b':');
            write_json_str(&mut buf, &id.value);
            buf.extend_from_slice(tail);
            buf.push(b'}');
            buf
        }
    }
}

/// One event's payload (`--kind events`): the v1 body of `POST /api/v1/customers/{id}/events`,
/// `{"name":..,"id":..,"timestamp":..,"data":{..}}`, or the v2 batch operation (schema
/// `person_event`) `{"type":"person","identifiers":{..},"action":"event","name":..,"id":..,
/// "timestamp":..,"attributes":{..}}`. A missing timestamp is left out (the API then uses the
/// time it receives the event); empty data is left out.
pub fn event_payload(
    api: Api,
    id: &Identifier,
    name: &str,
    event_id: &str,
    timestamp: Option<i64>,
    data: &serde_json::Map<String, serde_json::Value>,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128 + name.len() + id.value.len());
    let data_key: &[u8] = match api {
        Api::V1 => {
            buf.extend_from_slice(br#"{"name":"#);
            br#","data":"#
        }
        Api::Batch => {
            buf.extend_from_slice(br#"{"type":"person","identifiers":{"#);
            write_json_str(&mut buf, id.kind.as_str());
            buf.push(b':');
            write_json_str(&mut buf, &id.value);
            buf.extend_from_slice(br#"},"action":"event","name":"#);
            br#","attributes":"#
        }
    };
    write_json_str(&mut buf, name);
    buf.extend_from_slice(br#","id":"#);
    write_json_str(&mut buf, event_id);
    if let Some(t) = timestamp {
        buf.extend_from_slice(br#","timestamp":"#);
        buf.extend_from_slice(t.to_string().as_bytes());
    }
    if !data.is_empty() {
        buf.extend_from_slice(data_key);
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut buf, data);
    }
    buf.push(b'}');
    buf
}

/// Every byte outside RFC 3986's unreserved set is encoded, as the official clients do.
pub(crate) const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The v1 path of a person: `/api/v1/customers/{identifier}`, fully percent-encoded.
pub fn v1_customer_path(id: &Identifier) -> String {
    format!(
        "/api/v1/customers/{}",
        utf8_percent_encode(&id.v1_path_value(), PATH_SEGMENT)
    )
}

/// A Customer.io data center.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// `https://track.customer.io`
    Us,
    /// `https://track-eu.customer.io`
    Eu,
}

impl Region {
    /// The Track API base URL of the region.
    pub fn base_url(self) -> &'static str {
        match self {
            Region::Us => "https://track.customer.io",
            Region::Eu => "https://track-eu.customer.io",
        }
    }
}

/// Whether a host name is a loopback address (where plain HTTP is allowed).
pub fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(a) => a.is_loopback(),
        url::Host::Ipv6(a) => a.is_loopback(),
    }
}

/// Checks a base URL: https anywhere, http only on loopback.
pub fn check_endpoint(raw: &str) -> Result<reqwest::Url, String> {
    let url =
        reqwest::Url::parse(raw).map_err(|e| format!("--endpoint '{raw}' is not a URL: {e}"))?;
    let host = url
        .host()
        .ok_or_else(|| format!("--endpoint '{raw}' has no host"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback_host(&host) => Ok(url),
        "http" => Err(format!(
            "--endpoint '{raw}': plain http:// is allowed only for loopback hosts (localhost, 127.0.0.1, ::1), \
because the API key would travel unencrypted: use https://"
        )),
        other => Err(format!("--endpoint '{raw}': scheme '{other}' is not http(s)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::IdKind;

    #[test]
    fn v1_paths_encode_every_reserved_byte() {
        let id = |kind, v: &str| Identifier {
            kind,
            value: v.to_string(),
        };
        assert_eq!(
            v1_customer_path(&id(IdKind::Email, "a+b@x.io")),
            "/api/v1/customers/a%2Bb%40x.io"
        );
        assert_eq!(
            v1_customer_path(&id(IdKind::Id, "a/b c&é~_-.")),
            "/api/v1/customers/a%2Fb%20c%26%C3%A9~_-."
        );
        assert_eq!(
            v1_customer_path(&id(IdKind::CioId, "abc")),
            "/api/v1/customers/cio_abc"
        );
    }

    #[test]
    fn batch_operation_has_exactly_one_identifier() {
        let idv = Identifier {
            kind: IdKind::CioId,
            value: "f00".into(),
        };
        let mut w = PayloadWriter::begin(Api::Batch, &idv, 64);
        w.key("plan");
        w.str_value("pro");
        w.key_prepared(&json_key("n\"q"));
        w.int_value(-3);
        let p = String::from_utf8(w.finish()).unwrap();
        assert_eq!(
            p,
            r#"{"type":"person","identifiers":{"cio_id":"f00"},"action":"identify","attributes":{"plan":"pro","n\"q":-3}}"#
        );
    }

    #[test]
    fn delete_and_suppressions_carry_no_attributes() {
        let idv = Identifier {
            kind: IdKind::Email,
            value: "a\"b@x.io".into(),
        };
        for action in [Action::Delete, Action::Suppress, Action::Unsuppress] {
            let p = bare_payload(Api::Batch, Entity::Person, action, &idv);
            let v: serde_json::Value = serde_json::from_slice(&p).expect("valid JSON");
            assert_eq!(
                v,
                serde_json::json!({"type": "person", "identifiers": {"email": "a\"b@x.io"},
                    "action": action.as_str()})
            );
            assert!(bare_payload(Api::V1, Entity::Person, action, &idv).is_empty());
        }
    }

    #[test]
    fn event_payloads_follow_the_spec() {
        let idv = Identifier {
            kind: IdKind::Email,
            value: "a@b.io".into(),
        };
        let mut data = serde_json::Map::new();
        data.insert("amount".into(), serde_json::json!(12.5));
        let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
        let v1: serde_json::Value = serde_json::from_slice(&event_payload(
            Api::V1,
            &idv,
            "purchase",
            id,
            Some(1_700_000_000),
            &data,
        ))
        .unwrap();
        assert_eq!(
            v1,
            serde_json::json!({"name": "purchase", "id": id, "timestamp": 1_700_000_000,
                "data": {"amount": 12.5}})
        );
        let v2: serde_json::Value = serde_json::from_slice(&event_payload(
            Api::Batch,
            &idv,
            "purchase",
            id,
            None,
            &serde_json::Map::new(),
        ))
        .unwrap();
        assert_eq!(
            v2,
            serde_json::json!({"type": "person", "identifiers": {"email": "a@b.io"},
                "action": "event", "name": "purchase", "id": id})
        );
    }

    #[test]
    fn http_only_on_loopback() {
        assert!(check_endpoint("http://127.0.0.1:8080").is_ok());
        assert!(check_endpoint("http://localhost:1").is_ok());
        assert!(check_endpoint("http://[::1]:1").is_ok());
        assert!(check_endpoint("https://track.customer.io").is_ok());
        let e = check_endpoint("http://track.customer.io").unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        assert!(check_endpoint("http://10.0.0.1").is_err());
    }
}
