//! The sandbox's App API read endpoint, `POST /v1/customers/attributes` ("List customers,
//! attributes, and devices": up to 100 people by id, email or cio_id), served from the same
//! people the Track API endpoints received, behind its own bearer key and its own rate limit
//! (Customer.io's is 10 requests a second). Also the test hook
//! `POST /__sandbox/people/{id}/attributes`, which changes a person "in the workspace" after an
//! import, and `GET /__sandbox/app_api`, the endpoint's request and 429 counts.

use super::api::State;
use crate::secret::ApiKey;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use governor::clock::MonotonicClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde_json::{json, Map, Value};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Customer.io's App API limit: requests per second.
pub const DEFAULT_LIMIT: u32 = 10;
/// Most identifiers one request may name.
pub const MAX_IDS: usize = 100;
/// The bearer key `cio-import sandbox` requires when none is given.
pub const DEFAULT_KEY: &str = "sandbox-app-key";

/// How the App API endpoint behaves.
#[derive(Clone, Debug)]
pub struct AppApiConfig {
    /// The bearer key to require; `None` accepts any (but a bearer key must be sent).
    pub key: Option<ApiKey>,
    /// Requests per second before 429 (burst: one second's worth); 0 = no limit.
    pub limit: u32,
    /// Answer the first this many requests 503 (after auth and the limit), for tests of
    /// the retries.
    pub fail_first: u32,
}

impl Default for AppApiConfig {
    fn default() -> Self {
        AppApiConfig {
            key: None,
            limit: DEFAULT_LIMIT,
            fail_first: 0,
        }
    }
}

type Limiter =
    RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<std::time::Instant>>;

struct App {
    state: Arc<State>,
    limiter: Option<Limiter>,
    requests: AtomicU64,
    throttled: AtomicU64,
    /// Requests past auth and the limit (for `fail_first`).
    failed: AtomicU64,
}

/// The App API routes over the sandbox's state.
pub fn router(state: Arc<State>) -> Router {
    let limit = state.cfg.app_api.limit;
    let limiter = NonZeroU32::new(limit).map(|l| {
        RateLimiter::direct_with_clock(Quota::per_second(l).allow_burst(l), MonotonicClock)
    });
    let app = Arc::new(App {
        state,
        limiter,
        requests: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    Router::new()
        .route("/v1/customers/attributes", post(people_by_id))
        .route("/__sandbox/app_api", get(app_stats))
        .route("/__sandbox/people/{id}/attributes", post(change))
        .with_state(app)
}

fn error(code: StatusCode, msg: &str) -> Response {
    (
        code,
        Json(json!({"errors": [{"detail": msg, "status": code.as_u16()}]})),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct IdType {
    id_type: Option<String>,
}

async fn app_stats(AxState(app): AxState<Arc<App>>) -> Response {
    Json(json!({
        "requests": app.requests.load(Relaxed),
        "throttled": app.throttled.load(Relaxed),
    }))
    .into_response()
}

/// `POST /v1/customers/attributes?id_type=id|email|cio_id` with `{"ids": [...]}`: the people
/// who exist, each with `id`, `identifiers`, `attributes` and per-attribute `timestamps`; an
/// identifier nobody holds is left out, as the App API does.
async fn people_by_id(
    AxState(app): AxState<Arc<App>>,
    Query(q): Query<IdType>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    app.requests.fetch_add(1, Relaxed);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let authorized = match (&app.state.cfg.app_api.key, bearer) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(k), Some(given)) => given.trim() == k.expose(),
    };
    if !authorized {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    if let Some(l) = &app.limiter {
        if l.check().is_err() {
            app.throttled.fetch_add(1, Relaxed);
            return error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
        }
    }
    let failed = app.failed.fetch_add(1, Relaxed);
    if failed < u64::from(app.state.cfg.app_api.fail_first) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "scripted failure (sandbox)",
        );
    }
    let kind = q.id_type.unwrap_or_else(|| "id".into());
    if !["id", "email", "cio_id"].contains(&kind.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            "id_type must be id, email or cio_id",
        );
    }
    let ids: Vec<String> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(o)) => match o.get("ids") {
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => return error(StatusCode::BAD_REQUEST, "ids must be an array of strings"),
        },
        _ => return error(StatusCode::BAD_REQUEST, "the body must be {\"ids\": [...]}"),
    };
    if ids.is_empty() || ids.len() > MAX_IDS {
        return error(
            StatusCode::BAD_REQUEST,
            "ids must hold between 1 and 100 identifiers",
        );
    }
    let mut customers = Vec::new();
    for id in ids {
        let key = (kind.clone(), id.clone());
        let Some((mut attributes, stamps)) = app.state.people.read_back(&key) else {
            continue;
        };
        attributes
            .entry(kind.clone())
            .or_insert_with(|| Value::String(id.clone()));
        let timestamps: Map<String, Value> = stamps
            .into_iter()
            .map(|(k, t)| (k, Value::from(t)))
            .collect();
        let mut identifiers = Map::new();
        identifiers.insert(kind.clone(), Value::String(id.clone()));
        customers.push(json!({
            "id": if kind == "id" { Value::String(id) } else { Value::Null },
            "identifiers": identifiers,
            "attributes": attributes,
            "timestamps": timestamps,
            "unsubscribed": false,
            "devices": [],
        }));
    }
    Json(json!({"customers": customers, "meta": {}})).into_response()
}

#[derive(serde::Deserialize)]
struct KindQuery {
    kind: Option<String>,
}

/// `POST /__sandbox/people/{id}/attributes?kind=id` with a JSON object: sets those attributes
/// on an existing person, as an edit in the workspace would (404 when nobody holds them).
async fn change(
    AxState(app): AxState<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<KindQuery>,
    body: Bytes,
) -> Response {
    let attributes = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(o)) => o,
        _ => return error(StatusCode::BAD_REQUEST, "the body must be a JSON object"),
    };
    let key = (q.kind.unwrap_or_else(|| "id".into()), id);
    if app.state.people.change_in_workspace(&key, attributes) {
        Json(json!({"changed": true})).into_response()
    } else {
        error(StatusCode::NOT_FOUND, "no such person")
    }
}
