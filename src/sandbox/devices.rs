//! The sandbox's devices and merges: v1 `PUT /api/v1/customers/{id}/devices`,
//! `DELETE /api/v1/customers/{id}/devices/{device_id}`, `POST /api/v1/merge_customers`, and the
//! checks of the v2 operations `add_device`, `delete_device` and `merge`, with the shapes of
//! the Track API's schemas (`device_object`, `person_add_device`, `person_delete_device`,
//! `person_merge`).
//!
//! Messages and limits (the schemas declare no limits for devices; the sandbox applies the
//! person limits to device attributes, as the docs call them "like a person's attributes"):
//! - `device must be an object with the device's token` (v1: `id`; v2: `token`);
//! - `device token must be a non-empty string`;
//! - `platform must be ios or android` (lower case, as the enum spells them);
//! - `last_used must be integer Unix seconds`;
//! - `device attributes must be an object of strings`, a name at most 150 bytes, a value at
//!   most 1000 bytes, at most 300 of them;
//! - merges: `primary and secondary must each hold exactly one of id, email, cio_id`, values
//!   non-empty strings of at most 150 bytes; `primary and secondary are the same person`
//!   (same kind and value; emails without case).

use super::api::{apply_v1, v1_error, v1_key, v1_person, v1_refused, State};
use super::people::{Change, Device, Key};
use crate::json_object;
use crate::validate::{MAX_ATTRIBUTES, MAX_ID_BYTES, MAX_NAME_BYTES, MAX_VALUE_BYTES};
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};
use std::sync::Arc;

type Err = (String, String);

fn err<T>(field: &str, msg: impl Into<String>) -> Result<T, Err> {
    Err((field.to_string(), msg.into()))
}

/// Checks a device object; `token_field` is `id` (v1) or `token` (v2).
pub(super) fn check_device(s: &State, v: Option<&Value>, token_field: &str) -> Result<Device, Err> {
    let Some(Value::Object(d)) = v else {
        return err(
            "device",
            format!("device must be an object with the device's {token_field}"),
        );
    };
    let token = match d.get(token_field) {
        Some(Value::String(t)) if !t.trim().is_empty() => t.clone(),
        _ => {
            return err(
                &format!("device.{token_field}"),
                "device token must be a non-empty string",
            )
        }
    };
    let platform = match d.get("platform") {
        Some(Value::String(p)) if p == "ios" || p == "android" => p.clone(),
        _ => return err("device.platform", "platform must be ios or android"),
    };
    let last_used = match d.get("last_used") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
        Some(_) => return err("device.last_used", "last_used must be integer Unix seconds"),
    };
    let attributes = match d.get("attributes") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(a)) => a.clone(),
        Some(_) => {
            return err(
                "device.attributes",
                "device attributes must be an object of strings",
            )
        }
    };
    if attributes.len() > MAX_ATTRIBUTES {
        return err(
            "device.attributes",
            format!("cannot set more than {MAX_ATTRIBUTES} device attributes"),
        );
    }
    for (k, v) in &attributes {
        let Value::String(text) = v else {
            return err(
                &format!("device.attributes.{k}"),
                "device attributes must be an object of strings",
            );
        };
        if k.len() > MAX_NAME_BYTES {
            return err(
                &format!("device.attributes.{k}"),
                format!("attribute name cannot be longer than {MAX_NAME_BYTES} bytes"),
            );
        }
        if text.len() > MAX_VALUE_BYTES {
            return err(
                &format!("device.attributes.{k}"),
                format!("value for attribute '{k}' cannot be longer than {MAX_VALUE_BYTES} bytes"),
            );
        }
    }
    if last_used.is_some_and(|t| t > 100_000_000_000) {
        s.stats.violation(format!(
            "device last_used {last_used:?} looks like milliseconds"
        ));
    }
    Ok(Device {
        token,
        platform,
        last_used,
        attributes,
    })
}

/// The v2 `device` of an `add_device` or `delete_device` operation.
pub(super) fn check_v2_device(s: &State, key: Key, action: &str, op: &str) -> Result<Change, Err> {
    let v: Value = serde_json::from_str(op).map_err(|e| (String::new(), e.to_string()))?;
    match action {
        "add_device" => Ok(Change::AddDevice {
            key,
            device: check_device(s, v.get("device"), "token")?,
        }),
        _ => match v.get("device").and_then(|d| d.get("token")) {
            Some(Value::String(t)) if !t.trim().is_empty() => Ok(Change::DeleteDevice {
                key,
                token: t.clone(),
            }),
            _ => err("device.token", "device token must be a non-empty string"),
        },
    }
}

/// One side of a merge: exactly one of `id`, `email`, `cio_id`.
fn side(v: Option<&Value>, name: &str) -> Result<Key, Err> {
    let msg = "primary and secondary must each hold exactly one of id, email, cio_id";
    let Some(Value::Object(o)) = v else {
        return err(name, msg);
    };
    if o.len() != 1 {
        return err(name, msg);
    }
    let Some((kind, value)) = o.iter().next() else {
        return err(name, msg);
    };
    if !["id", "email", "cio_id"].contains(&kind.as_str()) {
        return err(name, msg);
    }
    let value = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return err(&format!("{name}.{kind}"), "identifier must be a string"),
    };
    if value.trim().is_empty() {
        return err(
            &format!("{name}.{kind}"),
            format!("{kind} attribute cannot be an empty string"),
        );
    }
    if value.len() > MAX_ID_BYTES {
        return err(
            &format!("{name}.{kind}"),
            format!("{kind} cannot be longer than {MAX_ID_BYTES} bytes"),
        );
    }
    Ok((kind.clone(), value))
}

/// A merge's `primary` and `secondary` (v1 body or v2 operation).
pub(super) fn check_merge(s: &State, op: &str) -> Result<Change, Err> {
    let v: Value = serde_json::from_str(op).map_err(|e| (String::new(), e.to_string()))?;
    let primary = side(v.get("primary"), "primary")?;
    let secondary = side(v.get("secondary"), "secondary")?;
    let same = primary.0 == secondary.0
        && if primary.0 == "email" {
            primary.1.eq_ignore_ascii_case(&secondary.1)
        } else {
            primary.1 == secondary.1
        };
    if same {
        return err("secondary", "primary and secondary are the same person");
    }
    for (k, val) in [&primary, &secondary] {
        if s.cfg.reject_ids.contains(val) {
            return err(
                k,
                format!("identifier '{val}' is refused (sandbox --reject-id)"),
            );
        }
    }
    Ok(Change::Merge { primary, secondary })
}

/// `PUT /api/v1/customers/{id}/devices`.
pub(super) async fn add_device_v1(
    AxState(s): AxState<Arc<State>>,
    uri: Uri,
    body: Bytes,
) -> Response {
    s.stats.body_size(body.len());
    let id = match v1_person(&s, &uri) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return v1_error(
                &s,
                StatusCode::BAD_REQUEST,
                "body must be a JSON object with a device".into(),
            )
        }
    };
    let device = match check_device(&s, v.get("device"), "id") {
        Ok(d) => d,
        Err((_, msg)) => return v1_error(&s, StatusCode::BAD_REQUEST, msg),
    };
    if let Some(r) = v1_refused(&s, &id) {
        return r;
    }
    apply_v1(
        &s,
        Change::AddDevice {
            key: v1_key(&id),
            device,
        },
    )
}

/// `DELETE /api/v1/customers/{id}/devices/{device_id}`.
pub(super) async fn delete_device_v1(AxState(s): AxState<Arc<State>>, uri: Uri) -> Response {
    let id = match v1_person(&s, &uri) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let raw = uri.path().rsplit("/devices/").next().unwrap_or_default();
    let token = match percent_decode_str(raw).decode_utf8() {
        Ok(t) if !t.trim().is_empty() => t.into_owned(),
        _ => {
            return v1_error(
                &s,
                StatusCode::BAD_REQUEST,
                "device token must be a non-empty string".into(),
            )
        }
    };
    if let Some(r) = v1_refused(&s, &id) {
        return r;
    }
    apply_v1(
        &s,
        Change::DeleteDevice {
            key: v1_key(&id),
            token,
        },
    )
}

/// `POST /api/v1/merge_customers`.
pub(super) async fn merge_v1(AxState(s): AxState<Arc<State>>, body: Bytes) -> Response {
    s.stats.body_size(body.len());
    if json_object::parse(&body).is_err() {
        return v1_error(
            &s,
            StatusCode::BAD_REQUEST,
            "body must be a JSON object with primary and secondary".into(),
        );
    }
    let text = String::from_utf8_lossy(&body);
    match check_merge(&s, &text) {
        Ok(change) => apply_v1(&s, change),
        Err((_, msg)) => v1_error(&s, StatusCode::BAD_REQUEST, msg),
    }
}
