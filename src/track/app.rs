//! The App API, for reading people back (`verify`): `POST /v1/customers/attributes?id_type=`
//! with `{"ids": [...]}` ("List customers, attributes, and devices", at most
//! [`MAX_IDS`] identifiers a request, 10 requests a second), authenticated with a bearer App
//! API key. Every fact of that wire lives here: the bases of the regions, the path, the body,
//! how an answer is read back to the identifiers asked for, and what is retried.

use super::client::{http_client, transport_error, ConnectError};
use super::error::{classify, Answer};
use crate::record::IdKind;
use crate::secret::ApiKey;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Most identifiers one request may name (the endpoint takes 1 to 100).
pub const MAX_IDS: usize = 100;
/// The App API's rate limit, requests per second.
pub const RATE_LIMIT: u32 = 10;
/// The environment variable holding the App API key.
pub const APP_API_KEY_ENV: &str = "CUSTOMERIO_APP_API_KEY";
/// The path of the endpoint.
pub const PEOPLE_PATH: &str = "/v1/customers/attributes";

/// The App API base of a region.
pub fn base_url(region: super::Region) -> &'static str {
    match region {
        super::Region::Us => "https://api.customer.io",
        super::Region::Eu => "https://api-eu.customer.io",
    }
}

/// What the workspace holds of one person.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Held {
    /// Their attributes, as the App API returns them.
    pub attributes: Map<String, Value>,
    /// When each attribute was last set (Unix seconds), when the answer gives it.
    pub timestamps: HashMap<String, i64>,
}

/// The meaning of one request's result.
#[derive(Debug)]
pub enum Fetched {
    /// The people found, by the identifier asked for (someone absent does not exist).
    People(HashMap<String, Held>),
    /// Anything else: retry, refusal or fatal, as for the Track API.
    Failed(Answer),
}

/// An App API client bound to one base URL and one key.
#[derive(Clone)]
pub struct AppClient {
    http: reqwest::Client,
    base: String,
    key: ApiKey,
}

impl std::fmt::Debug for AppClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppClient")
            .field("base", &self.base)
            .field("key", &self.key)
            .finish()
    }
}

impl AppClient {
    /// A client for `base` (a region's base or `--endpoint`), with `key` as the bearer.
    pub fn new(
        base: &reqwest::Url,
        key: ApiKey,
        timeout: Duration,
        ca_cert: Option<&Path>,
    ) -> Result<AppClient, ConnectError> {
        Ok(AppClient {
            http: http_client(base, timeout, 4, ca_cert)?,
            base: base.as_str().trim_end_matches('/').to_string(),
            key,
        })
    }

    /// Reads up to [`MAX_IDS`] people of one identifier kind. Never returns the key.
    pub async fn people(&self, kind: IdKind, ids: &[String]) -> Fetched {
        let url = format!("{}{PEOPLE_PATH}?id_type={}", self.base, kind.as_str());
        let body = serde_json::json!({ "ids": ids }).to_string();
        let resp = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .bearer_auth(self.key.expose())
            .body(body)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Fetched::Failed(transport_error(e)),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Fetched::Failed(transport_error(e)),
        };
        if !(200..300).contains(&status) {
            return Fetched::Failed(match classify(status, retry_after.as_deref(), &bytes, None) {
                Answer::Fatal { status, .. } => Answer::Fatal {
                    status,
                    message: format!(
                        "the App API refused the key ({status}): check {APP_API_KEY_ENV} (an App API key, \
not a Track API key) and --region"
                    ),
                },
                other => other,
            });
        }
        match read_people(kind, ids, &bytes) {
            Ok(found) => Fetched::People(found),
            // A 200 that cannot be read is an unknown answer: asking again is harmless.
            Err(message) => Fetched::Failed(Answer::Retry {
                status: Some(status),
                retry_after: None,
                message,
            }),
        }
    }
}

/// Reads an answer back to the identifiers asked for. Each entry of `customers` (or its
/// `customer` member) is matched by its `identifiers`, its `id`, or its attributes; an email is
/// matched without regard to case, as Customer.io treats it.
pub fn read_people(
    kind: IdKind,
    asked: &[String],
    body: &[u8],
) -> Result<HashMap<String, Held>, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the App API's answer is not JSON: {e}"))?;
    let list = v
        .get("customers")
        .and_then(Value::as_array)
        .ok_or("the App API's answer has no customers list")?;
    let name = kind.as_str();
    let norm = |s: &str| match kind {
        IdKind::Email => s.to_lowercase(),
        _ => s.to_string(),
    };
    let wanted: HashMap<String, &String> = asked.iter().map(|a| (norm(a), a)).collect();
    let mut found = HashMap::new();
    for entry in list {
        let c = entry.get("customer").unwrap_or(entry);
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let id = text(c.get("identifiers").and_then(|i| i.get(name)))
            .or_else(|| (kind == IdKind::Id).then(|| text(c.get("id"))).flatten())
            .or_else(|| text(c.get("attributes").and_then(|a| a.get(name))));
        let Some(asked) = id.and_then(|id| wanted.get(&norm(&id)).copied()) else {
            continue;
        };
        let attributes = c
            .get("attributes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let timestamps = c
            .get("timestamps")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, t)| {
                        let secs = t
                            .as_i64()
                            .or_else(|| t.as_str().and_then(|s| s.parse().ok()));
                        secs.map(|s| (k.clone(), s))
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.insert(
            asked.clone(),
            Held {
                attributes,
                timestamps,
            },
        );
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_back_to_the_ids_asked_for_in_either_shape() {
        let asked = vec!["A@x.io".to_string(), "b@x.io".to_string()];
        let body = br#"{"customers":[
            {"customer":{"id":"1","identifiers":{"email":"a@x.io"},"attributes":{"plan":"pro"},"timestamps":{"plan":"1700000000"}}},
            {"id":null,"attributes":{"email":"nobody@x.io"}}
        ],"meta":{}}"#;
        let got = read_people(IdKind::Email, &asked, body).unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        let a = &got["A@x.io"];
        assert_eq!(a.attributes["plan"], "pro");
        assert_eq!(a.timestamps["plan"], 1_700_000_000);
        assert!(read_people(IdKind::Id, &asked, b"<html>").is_err());
    }

    #[test]
    fn the_debug_form_hides_the_key() {
        let url = reqwest::Url::parse("http://127.0.0.1:1").unwrap();
        let c = AppClient::new(
            &url,
            ApiKey::new("app-secret"),
            Duration::from_secs(1),
            None,
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("app-secret"));
    }
}
