//! The sandbox's endpoints and the checks in front of them: auth, rate limit, faults, limits.

use super::faults::Dice;
use super::people::{Change, Event, Key, People};
use super::server::ResetConnection;
use super::stats::{Action, Stats, Tally};
use super::SandboxConfig;
use crate::json_object::{self, Members, Object};
use crate::validate::{
    MAX_ATTRIBUTES, MAX_BATCH_BYTES, MAX_EVENT_DATA_BYTES, MAX_EVENT_NAME_BYTES, MAX_ID_BYTES,
    MAX_NAME_BYTES, MAX_OPERATION_BYTES, MAX_VALUE_BYTES,
};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use governor::clock::MonotonicClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use percent_encoding::percent_decode_str;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// Everything the handlers share.
pub struct State {
    pub cfg: SandboxConfig,
    pub url: String,
    pub stats: Stats,
    pub people: People,
    /// Objects and relationships ([`super::objects`]).
    pub objects: super::objects::Objects,
    dice: Dice,
    started: Instant,
    v1_errors: AtomicU64,
    script: std::sync::Mutex<std::collections::VecDeque<super::Fault>>,
    /// The rate limiters, each in force from its start time on: `limit_schedule`'s steps, or
    /// `limit` alone from the start (`None`: no limit).
    schedule: Vec<(std::time::Duration, Option<Limiter>)>,
}

type Limiter =
    RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<std::time::Instant>>;

fn new_limiter(limit: u32, burst: u32) -> Option<Limiter> {
    NonZeroU32::new(limit).map(|l| {
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        RateLimiter::direct_with_clock(Quota::per_second(l).allow_burst(burst), MonotonicClock)
    })
}

impl State {
    /// The rate limiter in force now: the schedule's current step.
    fn current_limiter(&self) -> Option<&Limiter> {
        let t = self.started.elapsed();
        self.schedule
            .iter()
            .rev()
            .find(|(from, _)| *from <= t)
            .and_then(|(_, l)| l.as_ref())
    }
}

/// The customer's live traffic: Poisson arrivals at `background_rate` that spend the same
/// quota as the importer; ends when the sandbox is gone.
pub async fn background_traffic(state: std::sync::Weak<State>) {
    use rand::{Rng, SeedableRng};
    let (rate, seed) = match state.upgrade() {
        Some(s) => (f64::from(s.cfg.background_rate), s.cfg.seed),
        None => return,
    };
    let mut rng = match seed {
        Some(s) => rand::rngs::StdRng::seed_from_u64(s ^ 0x5eed_b4c6),
        None => rand::rngs::StdRng::from_os_rng(),
    };
    let mut next = tokio::time::Instant::now();
    loop {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        next += std::time::Duration::from_secs_f64(-u.ln() / rate);
        tokio::time::sleep_until(next).await;
        let Some(s) = state.upgrade() else { return };
        let ok = s.current_limiter().is_none_or(|l| l.check().is_ok());
        s.stats.background(ok);
    }
}

impl State {
    pub fn new(cfg: SandboxConfig, url: String) -> State {
        let schedule = if cfg.limit_schedule.is_empty() {
            vec![(std::time::Duration::ZERO, new_limiter(cfg.limit, cfg.burst))]
        } else {
            cfg.limit_schedule
                .iter()
                .map(|(from, l)| (*from, new_limiter(*l, cfg.burst)))
                .collect()
        };
        State {
            schedule,
            dice: Dice::new(cfg.seed),
            people: People::new(cfg.store_people),
            objects: Default::default(),
            started: Instant::now(),
            stats: Stats::default(),
            v1_errors: AtomicU64::new(0),
            script: std::sync::Mutex::new(cfg.script.iter().cloned().collect()),
            url,
            cfg,
        }
    }
}

impl State {
    /// Replaces the scripted faults.
    pub fn set_script(&self, faults: Vec<super::Fault>) {
        *self.script.lock().unwrap_or_else(|e| e.into_inner()) = faults.into();
    }

    /// Scripted faults not served yet.
    pub fn script_left(&self) -> usize {
        self.script.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

type Shared = Arc<State>;

/// The routes: the Track API ones behind the checks, the `/__sandbox` ones without.
pub fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/api/v1/customers/{id}", put(identify_v1).delete(delete_v1))
        .route(
            "/api/v1/customers/{id}/events",
            post(event_v1).fallback(not_found),
        )
        .route(
            "/api/v1/customers/{id}/suppress",
            post(suppress_v1).fallback(not_found),
        )
        .route(
            "/api/v1/customers/{id}/unsuppress",
            post(unsuppress_v1).fallback(not_found),
        )
        .route(
            "/api/v1/customers/{id}/devices",
            put(super::devices::add_device_v1).fallback(not_found),
        )
        .route(
            "/api/v1/customers/{id}/devices/{device_id}",
            axum::routing::delete(super::devices::delete_device_v1).fallback(not_found),
        )
        .route(
            "/api/v1/merge_customers",
            post(super::devices::merge_v1).fallback(not_found),
        )
        .route("/api/v2/entity", post(entity))
        .route("/api/v2/batch", post(batch))
        .route("/api/v1/accounts/region", get(region))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), checks));
    Router::new()
        .route("/__sandbox/stats", get(stats))
        .route("/__sandbox/people", get(people))
        .route("/__sandbox/people/{id}", get(person))
        .route("/__sandbox/events", get(events))
        .route("/__sandbox/suppressed", get(suppressed))
        .route("/__sandbox/objects", get(super::objects::list))
        .route("/__sandbox/arrivals", get(arrivals))
        .merge(api)
        .with_state(state.clone())
        .merge(super::app_api::router(state))
}

async fn stats(AxState(s): AxState<Shared>) -> Response {
    Json(s.stats.snapshot()).into_response()
}

async fn arrivals(AxState(s): AxState<Shared>) -> Response {
    Json(s.stats.arrivals()).into_response()
}

async fn people(AxState(s): AxState<Shared>) -> Response {
    let mut list = s.people.list();
    s.objects.annotate(&mut list);
    Json(list).into_response()
}

#[derive(serde::Deserialize)]
struct KindQuery {
    kind: Option<String>,
}

/// One person with their events (`events: []` when none), by identifier: told apart as in a
/// v1 path (`cio_` prefix, an `@`, else an id) unless `?kind=` names the kind. 404 when
/// nobody holds it, saying whether the identifier is suppressed.
async fn person(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    Query(q): Query<KindQuery>,
) -> Response {
    let key = match q.kind {
        Some(kind) => (kind, id),
        None => v1_key(&id),
    };
    match s.people.get(&key) {
        Some(mut p) => {
            p.relationships = s.objects.of_person(&key);
            let mut v = serde_json::to_value(p).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.entry("events").or_insert_with(|| json!([]));
                o.insert("suppressed".into(), json!(false));
            }
            Json(v).into_response()
        }
        None => status_json(
            StatusCode::NOT_FOUND,
            json!({"kind": key.0, "identifier": key.1, "suppressed": s.people.is_suppressed(&key),
                "meta": {"error": "no such person"}}),
        ),
    }
}

async fn events(AxState(s): AxState<Shared>) -> Response {
    Json(s.people.events()).into_response()
}

async fn suppressed(AxState(s): AxState<Shared>) -> Response {
    Json(s.people.suppressed()).into_response()
}

fn status_json(code: StatusCode, body: Value) -> Response {
    (code, Json(body)).into_response()
}

fn authorized(s: &State, headers: &HeaderMap) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    match (&s.cfg.credentials, given) {
        (None, Some(_)) => true,
        (None, None) => {
            s.stats.violation("request without Basic auth".into());
            true
        }
        (Some(c), Some(g)) => g.split_once(':') == Some((c.site_id.as_str(), c.api_key.expose())),
        (Some(_), None) => false,
    }
}

/// Latency, auth, rate limit, outage, faults; then the handler; then the ambiguous fault.
async fn checks(AxState(s): AxState<Shared>, req: Request, next: Next) -> Response {
    let _guard = s.stats.arrive();
    let arrived = Instant::now();
    let path = req.uri().path().to_string();
    // Limits are checked on arrival, as at a real API's edge; the latency comes after, so its
    // jitter cannot reorder requests in front of the rate limit.
    let resp = checked(&s, req, next).await;
    if !s.cfg.latency.is_zero() {
        let j = s.dice.jitter(0.2);
        tokio::time::sleep(s.cfg.latency.mul_f64(j)).await;
    }
    if resp.extensions().get::<ResetConnection>().is_some() {
        s.stats.reset();
        s.stats.log_arrival(arrived, &path, 0);
    } else {
        s.stats.answered(resp.status().as_u16());
        s.stats.log_arrival(arrived, &path, resp.status().as_u16());
    }
    resp
}

fn reset_response() -> Response {
    let mut r = Response::new(Body::empty());
    r.extensions_mut().insert(ResetConnection);
    r
}

fn retry_after_response(secs: Option<u64>) -> Response {
    let mut r = status_json(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"meta": {"error": "rate limit exceeded"}}),
    );
    if let Some(secs) = secs {
        if let Ok(v) = secs.to_string().parse() {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}

async fn checked(s: &State, req: Request, next: Next) -> Response {
    if !authorized(s, req.headers()) {
        return status_json(
            StatusCode::UNAUTHORIZED,
            json!({"meta": {"error": "Unauthorized request"}}),
        );
    }
    let scripted = s
        .script
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop_front();
    let mut ambiguous = false;
    let mut unreadable: Option<bool> = None;
    match scripted {
        Some(super::Fault::Status(429)) => return retry_after_response(None),
        Some(super::Fault::Status(code)) => {
            return status_json(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                json!({"meta": {"error": "scripted failure (sandbox)"}}),
            )
        }
        Some(super::Fault::RateLimited { retry_after }) => {
            return retry_after_response(Some(retry_after))
        }
        Some(super::Fault::Reset) => return reset_response(),
        Some(super::Fault::Slow) => {
            tokio::time::sleep(s.cfg.slow).await;
            return status_json(
                StatusCode::GATEWAY_TIMEOUT,
                json!({"meta": {"error": "slow answer (sandbox)"}}),
            );
        }
        Some(super::Fault::Ambiguous) => ambiguous = true,
        Some(super::Fault::Unreadable207 { truncated }) => unreadable = Some(truncated),
        Some(super::Fault::Pass) | None => {}
    }
    if let Some(l) = s.current_limiter() {
        if l.check().is_err() {
            return retry_after_response(s.cfg.retry_after);
        }
    }
    if let Some((start, len)) = s.cfg.outage {
        let t = s.started.elapsed();
        if t >= start && t < start + len {
            return status_json(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"meta": {"error": "outage (sandbox)"}}),
            );
        }
    }
    if s.dice.roll(s.cfg.reset_rate) {
        return reset_response();
    }
    if s.dice.roll(s.cfg.slow_rate) {
        tokio::time::sleep(s.cfg.slow).await;
        return status_json(
            StatusCode::GATEWAY_TIMEOUT,
            json!({"meta": {"error": "slow answer (sandbox)"}}),
        );
    }
    if s.dice.roll(s.cfg.fail_rate) {
        let code = [500u16, 502, 503, 504][s.dice.pick(4)];
        return status_json(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            json!({"meta": {"error": "injected failure (sandbox)"}}),
        );
    }
    let is_batch = req.uri().path() == "/api/v2/batch";
    if unreadable.is_none() && is_batch && s.dice.roll(s.cfg.unreadable_207_rate) {
        unreadable = Some(s.dice.roll(0.5));
    }
    let resp = next.run(req).await;
    if let (Some(truncated), true) = (unreadable, is_batch) {
        if resp.status().is_success() {
            return unreadable_207(resp, truncated).await;
        }
    }
    if resp.status().is_success() && (ambiguous || s.dice.roll(s.cfg.ambiguous_rate)) {
        // Applied, then the answer is lost in a 500, as a real server can do.
        return status_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"meta": {"error": "applied, then failed (sandbox)"}}),
        );
    }
    resp
}

/// A 207 whose body cannot be read: the real answer's JSON cut in half (or `{"errors":[{"ba`
/// when it was short), or an HTML page. The operations were applied as the real answer says.
async fn unreadable_207(resp: Response, truncated: bool) -> Response {
    let body = if truncated {
        let real = axum::body::to_bytes(resp.into_body(), MAX_BATCH_BYTES)
            .await
            .unwrap_or_default();
        let mut cut = real[..real.len() / 2].to_vec();
        if cut.len() < 12 {
            cut = br#"{"errors":[{"ba"#.to_vec();
        }
        cut
    } else {
        b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec()
    };
    let content_type = if truncated {
        "application/json"
    } else {
        "text/html"
    };
    (
        StatusCode::MULTI_STATUS,
        [(header::CONTENT_TYPE, content_type)],
        body,
    )
        .into_response()
}

async fn not_found(AxState(s): AxState<Shared>, uri: Uri) -> Response {
    let path = uri.path();
    if let Some(rest) = path.strip_prefix("/api/v1/customers/") {
        if rest.contains('/') {
            s.stats
                .violation(format!("unencoded '/' in a v1 identifier path: {path}"));
        }
    }
    status_json(
        StatusCode::NOT_FOUND,
        json!({"meta": {"error": "not found"}}),
    )
}

/// Classifies a v1 path identifier: `cio_` prefix, an email, or an id.
pub(super) fn v1_key(decoded: &str) -> (String, String) {
    if let Some(c) = decoded.strip_prefix("cio_") {
        ("cio_id".into(), c.to_string())
    } else if decoded.contains('@') {
        ("email".into(), decoded.to_string())
    } else {
        ("id".into(), decoded.to_string())
    }
}

fn raw_identifier(s: &State, uri: &Uri) -> Result<String, Box<Response>> {
    // The identifier is the segment after `/customers/` (`/events` and the like follow it).
    let rest = uri.path().trim_start_matches("/api/v1/customers/");
    let raw = rest.split('/').next().unwrap_or_default();
    if let Some(b) = raw
        .bytes()
        .find(|b| !(b.is_ascii_alphanumeric() || b"-._~%".contains(b)))
    {
        s.stats.violation(format!(
            "identifier not fully percent-encoded ('{}' left as is): {raw}",
            b as char
        ));
    }
    percent_decode_str(raw)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| {
            Box::new(v1_error(
                s,
                StatusCode::BAD_REQUEST,
                "identifier is not valid UTF-8".into(),
            ))
        })
}

/// A v1 error body, alternating between the two documented forms.
pub(super) fn v1_error(s: &State, code: StatusCode, msg: String) -> Response {
    let n = s.v1_errors.fetch_add(1, Relaxed);
    let body = if n.is_multiple_of(2) {
        json!({"meta": {"error": msg}})
    } else {
        json!({"meta": {"errors": [msg]}})
    };
    status_json(code, body)
}

/// The attribute rules, with the API's wording, on raw members (no map is built).
fn check_attributes(attrs: &Members) -> Result<(), (String, String)> {
    if attrs.len() > MAX_ATTRIBUTES {
        return Err((
            "attributes".into(),
            format!("cannot identify more than {MAX_ATTRIBUTES} attributes in one request"),
        ));
    }
    for (k, v) in attrs {
        if k.len() > MAX_NAME_BYTES {
            return Err((
                k.to_string(),
                format!("attribute name cannot be longer than {MAX_NAME_BYTES} bytes"),
            ));
        }
        if json_object::value_bytes(v, MAX_VALUE_BYTES) > MAX_VALUE_BYTES {
            return Err((
                k.to_string(),
                format!("value for attribute '{k}' cannot be longer than {MAX_VALUE_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

fn note_attribute_violations(s: &State, attrs: &Members) {
    for (k, v) in attrs {
        match k.as_ref() {
            "id" if v.get().starts_with("\"cio_") => s.stats.violation(format!(
                "a cio_ id in a body's id attribute ({}): this overwrites the person's id",
                v.get()
            )),
            "created_at" | "_timestamp" if !json_object::is_integer(v) => s
                .stats
                .violation(format!("{k} is not integer Unix seconds: {}", v.get())),
            _ => {}
        }
    }
}

/// The attributes as a map, for storing (only parsed when people are kept).
fn attribute_map(s: &State, members: &Members) -> Map<String, Value> {
    if !s.cfg.store_people {
        return Map::new();
    }
    members
        .iter()
        .map(|(k, v)| {
            let value = serde_json::from_str(v.get()).unwrap_or(Value::Null);
            (k.to_string(), value)
        })
        .collect()
}

/// The identifier a v1 path names, after the checks every v1 call gets.
pub(super) fn v1_person(s: &State, uri: &Uri) -> Result<String, Box<Response>> {
    let id = raw_identifier(s, uri)?;
    if id.trim().is_empty() {
        return Err(Box::new(v1_error(
            s,
            StatusCode::BAD_REQUEST,
            "id attribute cannot be an empty string".into(),
        )));
    }
    if id.len() > MAX_ID_BYTES + 4 {
        return Err(Box::new(v1_error(
            s,
            StatusCode::BAD_REQUEST,
            format!("id attribute cannot be longer than {MAX_ID_BYTES} bytes"),
        )));
    }
    Ok(id)
}

/// The 400 for an identifier the sandbox was told to refuse (`--reject-id`).
pub(super) fn v1_refused(s: &State, id: &str) -> Option<Response> {
    s.cfg.reject_ids.iter().any(|r| r == id).then(|| {
        v1_error(
            s,
            StatusCode::BAD_REQUEST,
            format!("identifier '{id}' is refused (sandbox --reject-id)"),
        )
    })
}

/// Which person action a change is, for the counts (objects' are counted apart).
fn action_of(c: &Change) -> Option<Action> {
    match c {
        Change::Identify { .. } => Some(Action::Identify),
        Change::Event { .. } => Some(Action::Event),
        Change::Delete(_) => Some(Action::Delete),
        Change::Suppress(_) => Some(Action::Suppress),
        Change::Unsuppress(_) => Some(Action::Unsuppress),
        Change::AddDevice { .. } => Some(Action::AddDevice),
        Change::DeleteDevice { .. } => Some(Action::DeleteDevice),
        Change::Merge { .. } => Some(Action::Merge),
        Change::Object(_) => None,
    }
}

/// Applies accepted changes in order and counts them.
fn apply(s: &State, changes: Vec<Change>) {
    super::objects::apply_in_order(s, changes, apply_people);
}

/// Applies accepted person changes and counts them.
fn apply_people(s: &State, changes: Vec<Change>) {
    let mut tally = Tally::default();
    for a in changes.iter().filter_map(action_of) {
        tally[a as usize] += 1;
    }
    let applied = s.people.apply(changes);
    s.stats.accepted(&tally, applied);
}

/// Applies one accepted v1 change and answers 200 `{}`.
pub(super) fn apply_v1(s: &State, change: Change) -> Response {
    apply(s, vec![change]);
    status_json(StatusCode::OK, json!({}))
}

async fn identify_v1(AxState(s): AxState<Shared>, uri: Uri, body: Bytes) -> Response {
    s.stats.body_size(body.len());
    let id = match v1_person(&s, &uri) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let body: &[u8] = if body.is_empty() { b"{}" } else { &body };
    let attrs = match json_object::parse(body) {
        Ok(m) => m,
        Err(_) => {
            return v1_error(
                &s,
                StatusCode::BAD_REQUEST,
                "body must be a JSON object".into(),
            )
        }
    };
    if let Err((_, msg)) = check_attributes(&attrs) {
        return v1_error(&s, StatusCode::BAD_REQUEST, msg);
    }
    if let Some(r) = v1_refused(&s, &id) {
        return r;
    }
    note_attribute_violations(&s, &attrs);
    let attributes = if s.cfg.store_people {
        serde_json::from_slice(body).unwrap_or_default()
    } else {
        Map::new()
    };
    apply_v1(
        &s,
        Change::Identify {
            key: v1_key(&id),
            attributes,
        },
    )
}

/// A v1 call that names a person and carries no body: checks the identifier, then applies
/// `change` to the person's key.
fn person_change_v1(s: &State, uri: &Uri, change: fn((String, String)) -> Change) -> Response {
    let id = match v1_person(s, uri) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    if let Some(r) = v1_refused(s, &id) {
        return r;
    }
    apply_v1(s, change(v1_key(&id)))
}

async fn delete_v1(AxState(s): AxState<Shared>, uri: Uri) -> Response {
    person_change_v1(&s, &uri, Change::Delete)
}

async fn suppress_v1(AxState(s): AxState<Shared>, uri: Uri) -> Response {
    person_change_v1(&s, &uri, Change::Suppress)
}

async fn unsuppress_v1(AxState(s): AxState<Shared>, uri: Uri) -> Response {
    person_change_v1(&s, &uri, Change::Unsuppress)
}

/// An event's fields as sent, before their checks (v1 body or v2 operation).
struct EventFields<'a> {
    name: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
    timestamp: Option<&'a RawValue>,
}

/// Unix seconds beyond this (the year 5138) are surely milliseconds.
const MAX_PLAUSIBLE_SECONDS: i64 = 100_000_000_000;

/// Checks an event's name, id and timestamp (the same rules and words in v1 and v2); returns
/// the event without data, or `(field, message)`.
fn check_event(s: &State, f: EventFields) -> Result<Event, (String, String)> {
    let err = |field: &str, msg: String| Err((field.to_string(), msg));
    let name = match f.name.map(|r| serde_json::from_str::<String>(r.get())) {
        None => return err("name", "event name must be present".into()),
        Some(Err(_)) => return err("name", "event name must be a string".into()),
        Some(Ok(n)) => n,
    };
    // Customer.io trims leading and trailing spaces from event names.
    let name = name.trim();
    if name.is_empty() {
        return err("name", "event name cannot be an empty string".into());
    }
    if name.len() > MAX_EVENT_NAME_BYTES {
        return err(
            "name",
            format!("event name cannot be longer than {MAX_EVENT_NAME_BYTES} bytes"),
        );
    }
    let id = match f.id {
        None => None,
        Some(r) => match serde_json::from_str::<String>(r.get())
            .ok()
            .and_then(|v| crate::event_id::normalize(&v))
        {
            Some(v) => Some(v),
            None => {
                return err(
                    "id",
                    "event id must be a ULID: 26 characters of Crockford base32".into(),
                )
            }
        },
    };
    let timestamp = match f.timestamp {
        None => None,
        Some(r) => match r.get().parse::<i64>() {
            Ok(t) if json_object::is_integer(r) => {
                if t > MAX_PLAUSIBLE_SECONDS {
                    s.stats.violation(format!(
                        "event timestamp {t} looks like milliseconds, not Unix seconds"
                    ));
                }
                Some(t)
            }
            _ => return err("timestamp", "timestamp must be integer Unix seconds".into()),
        },
    };
    Ok(Event {
        id,
        name: name.to_string(),
        timestamp,
        data: Map::new(),
    })
}

async fn event_v1(AxState(s): AxState<Shared>, uri: Uri, body: Bytes) -> Response {
    s.stats.body_size(body.len());
    let id = match v1_person(&s, &uri) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    #[derive(serde::Deserialize)]
    struct View<'a> {
        #[serde(borrow, default)]
        name: Option<&'a RawValue>,
        #[serde(borrow, default)]
        id: Option<&'a RawValue>,
        #[serde(borrow, default)]
        timestamp: Option<&'a RawValue>,
        #[serde(borrow, default)]
        data: Option<&'a RawValue>,
        #[serde(rename = "type", borrow, default)]
        kind: Option<Cow<'a, str>>,
    }
    let bad = |msg: String| v1_error(&s, StatusCode::BAD_REQUEST, msg);
    let view: View = match serde_json::from_slice(&body) {
        Ok(v) if body.trim_ascii_start().starts_with(b"{") => v,
        _ => return bad("body must be a JSON object with the event's name".into()),
    };
    match view.kind.as_deref() {
        None | Some("event") => {}
        Some(k @ ("page" | "screen")) => {
            return bad(format!(
                "event type '{k}' is not supported by the sandbox yet"
            ))
        }
        Some(k) => return bad(format!("unknown event type '{k}'")),
    }
    let mut event = match check_event(
        &s,
        EventFields {
            name: view.name,
            id: view.id,
            timestamp: view.timestamp,
        },
    ) {
        Ok(e) => e,
        Err((_, msg)) => return bad(msg),
    };
    if let Some(d) = view.data {
        let members = match json_object::parse(d.get().as_bytes()) {
            Ok(m) => m,
            Err(_) => return bad("data must be a JSON object".into()),
        };
        if d.get().len() > MAX_EVENT_DATA_BYTES {
            return bad(format!(
                "event data cannot be longer than {MAX_EVENT_DATA_BYTES} bytes"
            ));
        }
        event.data = attribute_map(&s, &members);
    }
    if let Some(r) = v1_refused(&s, &id) {
        return r;
    }
    apply_v1(
        &s,
        Change::Event {
            key: v1_key(&id),
            event,
        },
    )
}

async fn region(AxState(s): AxState<Shared>) -> Response {
    status_json(
        StatusCode::OK,
        json!({"url": s.url, "region": "us", "environment_id": 1}),
    )
}

/// The person actions the sandbox applies.
const APPLIED: [&str; super::stats::ACTIONS.len()] = super::stats::ACTIONS;

/// Person actions of the Track API the sandbox does not apply yet: answered as invalid
/// operations, never accepted silently.
const NOT_YET: [&str; 2] = ["page", "screen"];

/// One operation as sent: only what the checks need is parsed.
#[derive(serde::Deserialize)]
struct OpView<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    identifiers: Option<Object<'a>>,
    #[serde(borrow, default)]
    attributes: Option<Object<'a>>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
}

/// Checks one v2 operation; returns the change to apply, or `(field, message)`.
fn check_operation(s: &State, op: &RawValue) -> Result<Change, (String, String)> {
    let view: OpView = serde_json::from_str(op.get()).map_err(|e| {
        (
            String::new(),
            format!("operation must be an object of the documented shape: {e}"),
        )
    })?;
    match view.kind.as_deref() {
        Some("person") => {}
        Some("object") => {
            return super::objects::check_object(op.get(), &s.cfg.reject_ids).map(Change::Object)
        }
        Some(other) => {
            return Err((
                "type".into(),
                format!("type '{other}' is not supported by the sandbox"),
            ))
        }
        None => return Err(("type".into(), "type is required".into())),
    }
    let action = view.action.as_deref().unwrap_or("");
    if NOT_YET.contains(&action) {
        return Err((
            "action".into(),
            format!("action '{action}' is not supported by the sandbox yet"),
        ));
    }
    let relationships = matches!(action, "add_relationships" | "delete_relationships");
    if !APPLIED.contains(&action) && !relationships {
        return Err(("action".into(), format!("unknown action '{action}'")));
    }
    if action == "merge" {
        // A merge names two people and no `identifiers`.
        return super::devices::check_merge(s, op.get());
    }
    let ids = match &view.identifiers {
        Some(m) => &m.0,
        None => {
            s.stats
                .violation(format!("a {action} operation without identifiers"));
            return Err(("identifiers".into(), "identifiers is required".into()));
        }
    };
    if ids.len() != 1 {
        s.stats.violation(format!(
            "identifiers must hold exactly one identifier, got {}",
            ids.len()
        ));
        return Err((
            "identifiers".into(),
            "identifiers must hold exactly one of id, email, cio_id, phone".into(),
        ));
    }
    let (kind, value) = ids
        .first()
        .map(|(k, v)| {
            (
                k.to_string(),
                serde_json::from_str::<Value>(v.get()).unwrap_or(Value::Null),
            )
        })
        .unwrap_or_default();
    if !["id", "email", "cio_id", "phone"].contains(&kind.as_str()) {
        return Err(("identifiers".into(), format!("unknown identifier '{kind}'")));
    }
    let value = match value {
        Value::String(v) => v,
        Value::Number(n) => n.to_string(),
        _ => {
            return Err((
                format!("identifiers.{kind}"),
                "identifier must be a string or number".into(),
            ))
        }
    };
    if value.trim().is_empty() {
        return Err((
            format!("identifiers.{kind}"),
            format!("{kind} attribute cannot be an empty string"),
        ));
    }
    if value.len() > MAX_ID_BYTES {
        return Err((
            format!("identifiers.{kind}"),
            format!("{kind} cannot be longer than {MAX_ID_BYTES} bytes"),
        ));
    }
    if s.cfg.reject_ids.contains(&value) {
        return Err((
            format!("identifiers.{kind}"),
            format!("identifier '{value}' is refused (sandbox --reject-id)"),
        ));
    }
    if kind == "cio_id" && value.starts_with("cio_") {
        s.stats.violation(format!(
            "a cio_ prefix inside a v2 cio_id identifier: {value}"
        ));
    }
    let key: Key = (kind, value);
    match action {
        "identify" => {
            let members = view.attributes.map(|o| o.0).unwrap_or_default();
            check_attributes(&members)?;
            note_attribute_violations(s, &members);
            Ok(Change::Identify {
                key,
                attributes: attribute_map(s, &members),
            })
        }
        "event" => {
            let mut event = check_event(
                s,
                EventFields {
                    name: view.name,
                    id: view.id,
                    timestamp: view.timestamp,
                },
            )?;
            // The data's own limit (100,000 bytes) is beyond the 32,000 bytes an operation
            // may have, checked before this: nothing more to check here.
            if let Some(o) = view.attributes {
                event.data = attribute_map(s, &o.0);
            }
            Ok(Change::Event { key, event })
        }
        "add_relationships" | "delete_relationships" => {
            super::objects::check_person_relationships(key, action, op.get()).map(Change::Object)
        }
        "delete" => Ok(Change::Delete(key)),
        "suppress" => Ok(Change::Suppress(key)),
        "unsuppress" => Ok(Change::Unsuppress(key)),
        "add_device" | "delete_device" => super::devices::check_v2_device(s, key, action, op.get()),
        other => Err(("action".into(), format!("unknown action '{other}'"))),
    }
}

fn v2_errors(list: Vec<Value>) -> Value {
    json!({ "errors": list })
}

async fn entity(AxState(s): AxState<Shared>, body: Bytes) -> Response {
    s.stats.body_size(body.len());
    if body.len() > MAX_OPERATION_BYTES {
        s.stats.violation(format!(
            "oversize /api/v2/entity request: {} bytes",
            body.len()
        ));
        return status_json(
            StatusCode::BAD_REQUEST,
            v2_errors(vec![
                json!({"reason": "request_too_large", "field": "", "message": format!("request must be under {MAX_OPERATION_BYTES} bytes")}),
            ]),
        );
    }
    let op: &RawValue = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return status_json(
                StatusCode::BAD_REQUEST,
                v2_errors(vec![
                    json!({"reason": "invalid_json", "field": "", "message": e.to_string()}),
                ]),
            )
        }
    };
    match check_operation(&s, op) {
        Ok(change) => {
            apply(&s, vec![change]);
            status_json(StatusCode::OK, json!({}))
        }
        Err((field, message)) => status_json(
            StatusCode::BAD_REQUEST,
            v2_errors(vec![
                json!({"reason": "invalid", "field": field, "message": message}),
            ]),
        ),
    }
}

async fn batch(AxState(s): AxState<Shared>, body: Bytes) -> Response {
    s.stats.body_size(body.len());
    let too_big = |msg: String| {
        status_json(
            StatusCode::BAD_REQUEST,
            v2_errors(vec![
                json!({"reason": "request_too_large", "field": "", "message": msg}),
            ]),
        )
    };
    if body.len() > MAX_BATCH_BYTES {
        s.stats
            .violation(format!("oversize batch request: {} bytes", body.len()));
        return too_big(format!(
            "batch request must be at most {MAX_BATCH_BYTES} bytes"
        ));
    }
    #[derive(serde::Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        batch: Option<Vec<&'a RawValue>>,
    }
    let parsed: Body = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return status_json(
                StatusCode::BAD_REQUEST,
                v2_errors(vec![
                    json!({"reason": "invalid_json", "field": "", "message": e.to_string()}),
                ]),
            )
        }
    };
    let Some(ops) = parsed.batch else {
        return status_json(
            StatusCode::BAD_REQUEST,
            v2_errors(vec![
                json!({"reason": "invalid", "field": "batch", "message": "batch must be an array"}),
            ]),
        );
    };
    for (i, op) in ops.iter().enumerate() {
        let n = op.get().len();
        if n > MAX_OPERATION_BYTES {
            s.stats
                .violation(format!("oversize batch operation at index {i}: {n} bytes"));
            return too_big(format!("operation {i} is {n} bytes; each operation must be at most {MAX_OPERATION_BYTES} bytes"));
        }
    }
    if !s.cfg.poison_ids.is_empty() {
        let poisoned = ops.iter().find_map(|op| {
            let parsed: Value = serde_json::from_str(op.get()).ok()?;
            // A merge names its people as `primary` and `secondary`.
            let ids = parsed
                .get("identifiers")
                .or_else(|| parsed.get("secondary"))?
                .as_object()?;
            // Any identifier value: a person's, or an object's id.
            ids.values()
                .filter_map(Value::as_str)
                .find(|v| s.cfg.poison_ids.iter().any(|p| p == v))
                .map(str::to_string)
        });
        if let Some(v) = poisoned {
            return status_json(
                StatusCode::BAD_REQUEST,
                v2_errors(vec![
                    json!({"reason": "invalid", "field": "batch", "message": format!("the batch holds '{v}', which fails the whole request (sandbox --poison-id)")}),
                ]),
            );
        }
    }
    let mut errors = Vec::new();
    let mut changes = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        match check_operation(&s, op) {
            Ok(c) => changes.push(c),
            Err((field, message)) => errors.push(
                json!({"batch_index": i, "reason": "invalid", "field": field, "message": message}),
            ),
        }
    }
    apply(&s, changes);
    if errors.is_empty() {
        status_json(StatusCode::OK, json!({}))
    } else {
        status_json(StatusCode::MULTI_STATUS, v2_errors(errors))
    }
}
