//! Speaking the Track API: endpoints, payloads, the HTTP client, and what each answer means.

pub mod batch;
pub mod client;
pub mod error;

pub use client::{Request, TrackClient};
pub use error::Answer;

use crate::record::Identifier;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;
use serde_json::{Map, Value};

/// Which API carries the people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `POST /api/v2/batch`: many people per request (the default).
    Batch,
    /// `PUT /api/v1/customers/{identifier}`: one person per request.
    V1,
}

#[derive(Serialize)]
struct Operation<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    identifiers: Identifiers<'a>,
    action: &'static str,
    attributes: &'a Map<String, Value>,
}

struct Identifiers<'a>(&'a Identifier);

impl Serialize for Identifiers<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.0.kind.as_str(), &self.0.value)?;
        m.end()
    }
}

impl Api {
    /// The serialized payload of one person: the v1 body, or one v2 batch operation.
    pub fn payload(self, id: &Identifier, attributes: &Map<String, Value>) -> Vec<u8> {
        // Serializing a map of JSON values with string keys cannot fail.
        match self {
            Api::V1 => serde_json::to_vec(attributes).unwrap_or_default(),
            Api::Batch => serde_json::to_vec(&Operation {
                kind: "person",
                identifiers: Identifiers(id),
                action: "identify",
                attributes,
            })
            .unwrap_or_default(),
        }
    }
}

/// Every byte outside RFC 3986's unreserved set is encoded, as the official clients do.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
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
        let mut m = Map::new();
        m.insert("plan".into(), Value::from("pro"));
        let p = String::from_utf8(Api::Batch.payload(&idv, &m)).unwrap();
        assert_eq!(
            p,
            r#"{"type":"person","identifiers":{"cio_id":"f00"},"action":"identify","attributes":{"plan":"pro"}}"#
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
