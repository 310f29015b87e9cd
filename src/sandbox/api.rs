//! The sandbox's endpoints and the checks in front of them: auth, rate limit, faults, limits.

use super::faults::Dice;
use super::people::{Change, People};
use super::server::ResetConnection;
use super::stats::Stats;
use super::SandboxConfig;
use crate::json_object::{self, Members, Object};
use crate::validate::{
    MAX_ATTRIBUTES, MAX_BATCH_BYTES, MAX_ID_BYTES, MAX_NAME_BYTES, MAX_OPERATION_BYTES,
    MAX_VALUE_BYTES,
};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxState};
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
    dice: Dice,
    limiter: Option<
        RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<std::time::Instant>>,
    >,
    started: Instant,
    v1_errors: AtomicU64,
    script: std::sync::Mutex<std::collections::VecDeque<super::Fault>>,
    /// `limit_schedule`'s limiters, each from its start time on.
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
    /// The rate limiter in force now (the schedule's current step, or the fixed one).
    fn current_limiter(&self) -> Option<&Limiter> {
        if self.schedule.is_empty() {
            return self.limiter.as_ref();
        }
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
        let limiter = new_limiter(cfg.limit, cfg.burst);
        let schedule = cfg
            .limit_schedule
            .iter()
            .map(|(from, l)| (*from, new_limiter(*l, cfg.burst)))
            .collect();
        State {
            schedule,
            dice: Dice::new(cfg.seed),
            people: People::new(cfg.store_people),
            limiter,
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
        .route("/api/v2/entity", post(entity))
        .route("/api/v2/batch", post(batch))
        .route("/api/v1/accounts/region", get(region))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), checks));
    Router::new()
        .route("/__sandbox/stats", get(stats))
        .route("/__sandbox/people", get(people))
        .route("/__sandbox/arrivals", get(arrivals))
        .merge(api)
        .with_state(state)
}

async fn stats(AxState(s): AxState<Shared>) -> Response {
    Json(s.stats.snapshot()).into_response()
}

async fn arrivals(AxState(s): AxState<Shared>) -> Response {
    Json(s.stats.arrivals()).into_response()
}

async fn people(AxState(s): AxState<Shared>) -> Response {
    Json(s.people.list()).into_response()
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
fn v1_key(decoded: &str) -> (String, String) {
    if let Some(c) = decoded.strip_prefix("cio_") {
        ("cio_id".into(), c.to_string())
    } else if decoded.contains('@') {
        ("email".into(), decoded.to_string())
    } else {
        ("id".into(), decoded.to_string())
    }
}

fn raw_identifier(s: &State, uri: &Uri) -> Result<String, Box<Response>> {
    let raw = uri.path().trim_start_matches("/api/v1/customers/");
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
fn v1_error(s: &State, code: StatusCode, msg: String) -> Response {
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

async fn identify_v1(AxState(s): AxState<Shared>, uri: Uri, body: Bytes) -> Response {
    s.stats.body_size(body.len());
    let id = match raw_identifier(&s, &uri) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    if id.trim().is_empty() {
        return v1_error(
            &s,
            StatusCode::BAD_REQUEST,
            "id attribute cannot be an empty string".into(),
        );
    }
    if id.len() > MAX_ID_BYTES + 4 {
        return v1_error(
            &s,
            StatusCode::BAD_REQUEST,
            format!("id attribute cannot be longer than {MAX_ID_BYTES} bytes"),
        );
    }
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
    if s.cfg.reject_ids.contains(&id) {
        return v1_error(
            &s,
            StatusCode::BAD_REQUEST,
            format!("identifier '{id}' is refused (sandbox --reject-id)"),
        );
    }
    note_attribute_violations(&s, &attrs);
    if s.cfg.store_people {
        let attributes = serde_json::from_slice(body).unwrap_or_default();
        s.people.apply(vec![Change::Identify {
            key: v1_key(&id),
            attributes,
        }]);
    }
    s.stats.applied(1);
    status_json(StatusCode::OK, json!({}))
}

async fn delete_v1(AxState(s): AxState<Shared>, uri: Uri) -> Response {
    let id = match raw_identifier(&s, &uri) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    s.people.apply(vec![Change::Delete(v1_key(&id))]);
    s.stats.applied(1);
    status_json(StatusCode::OK, json!({}))
}

async fn region(AxState(s): AxState<Shared>) -> Response {
    status_json(
        StatusCode::OK,
        json!({"url": s.url, "region": "us", "environment_id": 1}),
    )
}

const ACTIONS: [&str; 10] = [
    "identify",
    "delete",
    "suppress",
    "unsuppress",
    "event",
    "add_relationships",
    "delete_relationships",
    "add_device",
    "delete_device",
    "merge",
];

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
}

/// Checks one v2 operation; returns the change to apply, or `(field, message)`.
fn check_operation(s: &State, op: &RawValue) -> Result<Option<Change>, (String, String)> {
    let view: OpView = serde_json::from_str(op.get()).map_err(|e| {
        (
            String::new(),
            format!("operation must be an object of the documented shape: {e}"),
        )
    })?;
    match view.kind.as_deref() {
        Some("person") => {}
        Some(other) => {
            return Err((
                "type".into(),
                format!("type '{other}' is not supported by the sandbox"),
            ))
        }
        None => return Err(("type".into(), "type is required".into())),
    }
    let action = view.action.as_deref().unwrap_or("");
    if !ACTIONS.contains(&action) {
        return Err(("action".into(), format!("unknown action '{action}'")));
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
    let key = (kind, value);
    match action {
        "identify" => {
            let members = view.attributes.map(|o| o.0).unwrap_or_default();
            check_attributes(&members)?;
            note_attribute_violations(s, &members);
            Ok(Some(Change::Identify {
                key,
                attributes: attribute_map(s, &members),
            }))
        }
        "delete" => Ok(Some(Change::Delete(key))),
        _ => Ok(None),
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
            s.people.apply(change.into_iter().collect());
            s.stats.applied(1);
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
            let ids = parsed.get("identifiers")?.as_object()?;
            let v = ids.values().next()?.as_str()?;
            s.cfg
                .poison_ids
                .iter()
                .any(|p| p == v)
                .then(|| v.to_string())
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
            Ok(c) => changes.extend(c),
            Err((field, message)) => errors.push(
                json!({"batch_index": i, "reason": "invalid", "field": field, "message": message}),
            ),
        }
    }
    let applied = (ops.len() - errors.len()) as u64;
    s.people.apply(changes);
    s.stats.applied(applied);
    if errors.is_empty() {
        status_json(StatusCode::OK, json!({}))
    } else {
        status_json(StatusCode::MULTI_STATUS, v2_errors(errors))
    }
}
