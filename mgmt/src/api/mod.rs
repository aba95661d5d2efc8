//! The REST API: configuration through the same validated model as the config file, operational views,
//! actions and Prometheus metrics, over HTTPS with bearer tokens.
//!
//! Layer: management, on the REST server's own threads. Contract:
//! - Every request but `GET /api/v1/openapi.json` carries `Authorization: Bearer TOKEN`; a token has a
//!   [`Role`]: `read-only` reads, `operator` also runs actions and validates configurations, `admin` also
//!   replaces the configuration. A missing or unknown token is 401, too small a role 403.
//! - `PUT /api/v1/config` takes a whole [`Config`] as JSON with `If-Match: "REVISION"` (the `ETag` of
//!   `GET /api/v1/config`): a change made against another revision is refused (412), never merged; one
//!   without `If-Match` is refused too (428). The change is validated (422, each problem with its
//!   field's path), applied to the running box by the [`Backend`] (which applies all of it or none), and
//!   only then persisted; if persisting fails, the previous configuration is applied again.
//! - Errors are JSON: `{"error": "...", "fields": [{"path": "...", "message": "..."}]}`; no input makes the
//!   server answer 5xx except a failure of the box itself.
//!
//! The views and actions come from the [`Backend`] (the daemon's control loop); the API only routes,
//! authorises and renders.
//!
//! Observability (see [`crate::events`], [`crate::debug`], [`crate::capture`]): `GET /api/v1/events`
//! (recent events or debug lines, JSON) and `GET /api/v1/events/stream` (Server-Sent Events: every
//! event and conditional debug line from now on, after the ring's entries newer than `since` or
//! `Last-Event-ID`) for read-only tokens; `GET/PUT/DELETE /api/v1/debug/conditions[/PEER]` (per-peer
//! conditional debug) and `POST /api/v1/capture`, `GET /api/v1/capture`, `POST /api/v1/capture/stop`,
//! `GET /api/v1/capture/pcap` (packet capture) for operators.
//!
//! The OpenAPI document (`openapi.rs`) is served and checked in as `mgmt/openapi.json`.

pub mod daemon;
pub mod metrics;
mod openapi;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::capture::{CaptureControl, CaptureError, CaptureSpec};
use crate::config::store::{ConfigStore, StoreError};
use crate::config::{Config, ConfigError, FieldError};
use crate::debug::Condition;
use crate::events::{Kind, Observe};

pub use openapi::document;

/// What a token may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Read configuration, views and metrics.
    ReadOnly,
    /// Also run actions (clear, drain) and validate configurations.
    Operator,
    /// Also replace the configuration.
    Admin,
}

/// An API token as the box stores it: its name, its role and the SHA-256 of the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Who or what holds it, for logs.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the secret, in hex.
    pub sha256: String,
}

impl Token {
    /// A token for `secret` (the box keeps only its hash).
    pub fn new(name: &str, role: Role, secret: &str) -> Token {
        Token { name: name.to_string(), role, sha256: hex::encode(Sha256::digest(secret.as_bytes())) }
    }
}

/// Reads a token file (TOML): `[[tokens]]` tables with `name`, `role` (`read-only`, `operator`,
/// `admin`) and `sha256`, the SHA-256 of the secret in hex (`printf %s SECRET | sha256sum`).
pub fn load_tokens(text: &str) -> Result<Vec<Token>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        tokens: Vec<Token>,
    }
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    for (i, t) in file.tokens.iter().enumerate() {
        if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("tokens[{i}].sha256: not a SHA-256 in hex (64 hex digits)"));
        }
    }
    let tokens = file.tokens.into_iter().map(|t| Token { sha256: t.sha256.to_ascii_lowercase(), ..t }).collect();
    Ok(tokens)
}

/// The operational views the API serves, as `show` commands name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum View {
    /// `show dmvpn`.
    Dmvpn,
    /// `show ip nhrp`.
    Nhrp,
    /// `show ip nhrp nhs detail`.
    NhrpNhs,
    /// `show crypto ikev2 sa`.
    Ikev2Sa,
    /// `show crypto ipsec sa`.
    IpsecSa,
    /// Interfaces and their counters.
    Interfaces,
    /// Routes per VRF.
    Routes,
    /// Counters per layer (NBMA, IPsec, GRE, overlay) with drops by reason.
    Counters,
}

/// The actions an operator can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// `clear ip nhrp [ADDRESS]` on a tunnel (all entries without an address).
    ClearNhrp {
        /// The tunnel's name.
        tunnel: String,
        /// One overlay address.
        #[serde(default)]
        address: Option<std::net::IpAddr>,
    },
    /// Tear down everything with one peer (its NHRP entries, IKE and IPsec SAs).
    ClearPeer {
        /// The peer's NBMA address.
        nbma: std::net::IpAddr,
    },
    /// `clear crypto ikev2 sa` with one peer.
    ClearIkeSa {
        /// The peer's NBMA address.
        nbma: std::net::IpAddr,
    },
    /// Drain the hub for maintenance, or end the drain. While drained, the hub answers a Registration
    /// Request from a spoke that holds no binding here with CIE code 5, Insufficient Resources, so
    /// that spokes register with their other hubs; spokes already bound stay (and keep refreshing)
    /// until an operator clears them one by one (`clear-peer`), which moves their traffic gradually.
    Drain {
        /// Start (true) or end (false) the drain.
        enable: bool,
    },
}

/// Why the box could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// The request names something that does not exist (404).
    NotFound(String),
    /// The request cannot be done in the box's state (409).
    Refused(String),
    /// The box failed (500).
    Failed(String),
}

/// The running box as the API sees it: the daemon's control loop implements it.
pub trait Backend: Send + Sync {
    /// Applies a validated configuration to the running box: all of it, or nothing.
    fn apply(&self, config: &Config) -> Result<(), BackendError>;
    /// One operational view, as JSON.
    fn view(&self, view: View) -> Result<serde_json::Value, BackendError>;
    /// Runs an action; returns what it did, for the answer.
    fn act(&self, action: &Action) -> Result<String, BackendError>;
    /// Metrics in the Prometheus text exposition format.
    fn metrics(&self) -> Result<String, BackendError>;
    /// The box's events, debug lines and debug conditions (`None`: it keeps none; the endpoints
    /// answer 503).
    fn observe(&self) -> Option<Arc<Observe>> {
        None
    }
    /// The box's packet capture (`None`: its data plane has none; the endpoints answer 503).
    fn capture(&self) -> Option<Arc<CaptureControl>> {
        None
    }
}

/// The API's state: tokens, the configuration store and the box.
pub struct Api {
    tokens: Vec<Token>,
    store: Mutex<ConfigStore>,
    backend: Arc<dyn Backend>,
}

impl core::fmt::Debug for Api {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Api").field("tokens", &self.tokens.len()).finish()
    }
}

impl Api {
    /// An API over `store` and `backend`, accepting `tokens`.
    pub fn new(tokens: Vec<Token>, store: ConfigStore, backend: Arc<dyn Backend>) -> Arc<Api> {
        Arc::new(Api { tokens, store: Mutex::new(store), backend })
    }

    /// Re-reads the configuration file (`SIGHUP`): validated, applied to the box through the same
    /// [`Backend::apply`] as `PUT /api/v1/config`, then current. Returns the new revision; on an error
    /// the box and the store are as they were.
    pub fn reload(&self) -> Result<String, String> {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = ConfigStore::open(store.path()).map_err(|e| e.to_string())?;
        self.backend.apply(fresh.current()).map_err(|e| format!("{e:?}"))?;
        *store = fresh;
        Ok(store.revision().to_string())
    }

    /// The role of the bearer of `secret`, compared in constant time.
    fn role(&self, secret: &str) -> Option<Role> {
        let hash = hex::encode(Sha256::digest(secret.as_bytes()));
        self.tokens.iter().find(|t| bool::from(t.sha256.as_bytes().ct_eq(hash.as_bytes()))).map(|t| t.role)
    }
}

/// An error answer.
#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<FieldBody>,
}

#[derive(Debug, Serialize)]
struct FieldBody {
    path: String,
    message: String,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody { error: message.into(), fields: Vec::new() })).into_response()
}

fn config_error(e: ConfigError) -> Response {
    match e {
        ConfigError::Invalid(fields) => {
            let fields = fields.into_iter().map(|FieldError { path, message }| FieldBody { path, message }).collect();
            let body = ErrorBody { error: "invalid configuration".into(), fields };
            (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
        }
        ConfigError::Parse { path, message, .. } => {
            let body = ErrorBody { error: "the body does not parse".into(), fields: vec![FieldBody { path, message }] };
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
        e @ ConfigError::Serialize { .. } => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

fn backend_error(e: BackendError) -> Response {
    match e {
        BackendError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
        BackendError::Refused(m) => error(StatusCode::CONFLICT, m),
        BackendError::Failed(m) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

/// The role a route needs, attached to the router layer that checks it.
#[derive(Clone)]
struct Needs(Role, Arc<Api>);

async fn authorise(State(Needs(needed, api)): State<Needs>, request: Request, next: Next) -> Response {
    let secret = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(secret) = secret else {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing bearer token (Authorization: Bearer TOKEN)");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    };
    match api.role(secret) {
        None => error(StatusCode::UNAUTHORIZED, "unknown token"),
        Some(role) if role < needed => {
            error(StatusCode::FORBIDDEN, format!("this token's role may not do this (needs {needed:?}, has {role:?})"))
        }
        Some(_) => next.run(request).await,
    }
}

/// The API's routes.
pub fn router(api: Arc<Api>) -> Router {
    let layer = |role| middleware::from_fn_with_state(Needs(role, api.clone()), authorise);
    let read = Router::new()
        .route("/api/v1/config", get(get_config))
        .route("/api/v1/views/:view", get(get_view))
        .route("/metrics", get(get_metrics))
        .route("/api/v1/events", get(get_events))
        .route("/api/v1/events/stream", get(stream_events))
        .route_layer(layer(Role::ReadOnly));
    let operate = Router::new()
        .route("/api/v1/config/validate", post(validate_config))
        .route("/api/v1/actions", post(act))
        .route("/api/v1/debug/conditions", get(get_conditions).put(put_condition).delete(delete_conditions))
        .route("/api/v1/debug/conditions/:peer", axum::routing::delete(delete_condition))
        .route("/api/v1/capture", get(capture_status).post(capture_start))
        .route("/api/v1/capture/stop", post(capture_stop))
        .route("/api/v1/capture/pcap", get(capture_pcap))
        .route_layer(layer(Role::Operator));
    let admin = Router::new().route("/api/v1/config", axum::routing::put(put_config)).route_layer(layer(Role::Admin));
    Router::new()
        .route("/api/v1/openapi.json", get(|| async { Json(document()) }))
        .merge(read)
        .merge(operate)
        .merge(admin)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint; see /api/v1/openapi.json") })
        .with_state(api)
}

fn etag(revision: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

async fn get_config(State(api): State<Arc<Api>>) -> Response {
    let store = api.store.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = Json(store.current().clone()).into_response();
    r.headers_mut().insert(header::ETAG, etag(store.revision()));
    r
}

async fn validate_config(body: String) -> Response {
    let config = match Config::from_json(&body) {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    match config.validate() {
        Ok(()) => Json(serde_json::json!({"valid": true})).into_response(),
        Err(e) => config_error(e),
    }
}

/// Runs `f` (which waits for the box) on a blocking thread, so that the server's own threads keep
/// answering meanwhile.
async fn blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("the request's thread failed: {e}")))
}

async fn put_config(State(api): State<Arc<Api>>, headers: HeaderMap, body: String) -> Response {
    blocking(move || put_config_now(&api, &headers, &body)).await
}

fn put_config_now(api: &Api, headers: &HeaderMap, body: &str) -> Response {
    let Some(expected) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return error(
            StatusCode::PRECONDITION_REQUIRED,
            "a change needs If-Match with the ETag of the configuration it was made against",
        );
    };
    let expected = expected.trim().trim_matches('"').to_string();
    let config = match Config::from_json(body) {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    let mut store = api.store.lock().unwrap_or_else(|e| e.into_inner());
    if expected != store.revision() {
        let message = format!(
            "the configuration changed (now revision {}, the change was made against {expected}); reload and retry",
            store.revision()
        );
        return error(StatusCode::PRECONDITION_FAILED, message);
    }
    if let Err(e) = config.validate() {
        return config_error(e);
    }
    if let Err(e) = api.backend.apply(&config) {
        return backend_error(e);
    }
    let previous = store.current().clone();
    match store.replace(config, Some(&expected)) {
        Ok(revision) => {
            let mut r = Json(serde_json::json!({"revision": revision})).into_response();
            r.headers_mut().insert(header::ETAG, etag(&revision));
            r
        }
        Err(e) => {
            // Not persisted: the box goes back to what the file says.
            let restored = api.backend.apply(&previous);
            let message = match (e, restored) {
                (StoreError::Config(e), _) => return config_error(e),
                (e, Ok(())) => format!("{e}; the previous configuration is in force again"),
                (e, Err(r)) => format!("{e}; restoring the previous configuration failed too: {r:?}"),
            };
            error(StatusCode::INTERNAL_SERVER_ERROR, message)
        }
    }
}

async fn get_view(State(api): State<Arc<Api>>, Path(view): Path<String>) -> Response {
    let Ok(view) = serde_json::from_value::<View>(serde_json::Value::String(view.clone())) else {
        return error(StatusCode::NOT_FOUND, format!("no view named {view:?}; see /api/v1/openapi.json"));
    };
    blocking(move || match api.backend.view(view) {
        Ok(v) => Json(v).into_response(),
        Err(e) => backend_error(e),
    })
    .await
}

async fn act(State(api): State<Arc<Api>>, body: String) -> Response {
    let action: Action = match serde_json::from_str(&body) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not an action: {e}")),
    };
    blocking(move || match api.backend.act(&action) {
        Ok(done) => Json(serde_json::json!({"done": done})).into_response(),
        Err(e) => backend_error(e),
    })
    .await
}

async fn get_metrics(State(api): State<Arc<Api>>) -> Response {
    blocking(move || match api.backend.metrics() {
        Ok(m) => {
            let mut r = m.into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
            r
        }
        Err(e) => backend_error(e),
    })
    .await
}

fn field_errors(error: &str, fields: Vec<FieldError>) -> Response {
    let fields = fields.into_iter().map(|FieldError { path, message }| FieldBody { path, message }).collect();
    (StatusCode::UNPROCESSABLE_ENTITY, Json(ErrorBody { error: error.into(), fields })).into_response()
}

fn unavailable(what: &str) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, format!("this box has no {what}"))
}

/// 400 for a body that is not JSON, saying where it stops parsing.
fn not_json(e: serde_json::Error) -> Response {
    let body = ErrorBody {
        error: "the body does not parse".into(),
        fields: vec![FieldBody { path: String::new(), message: e.to_string() }],
    };
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// The query string's `key=value` pairs; a number that does not parse is 422 naming the parameter.
struct Query(Vec<(String, String)>);

impl Query {
    fn new(raw: Option<String>) -> Query {
        let raw = raw.unwrap_or_default();
        Query(
            raw.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| p.split_once('=').unwrap_or((p, "")))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn number(&self, key: &str, default: u64, max: u64, errors: &mut Vec<FieldError>) -> u64 {
        match self.get(key) {
            None => default,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n <= max => n,
                _ => {
                    errors.push(FieldError {
                        path: key.into(),
                        message: format!("expected a whole number from 0 to {max}, got {v:?}"),
                    });
                    default
                }
            },
        }
    }

    /// Unknown parameters, each a problem naming itself.
    fn unknown(&self, known: &[&str], errors: &mut Vec<FieldError>) {
        for (k, _) in self.0.iter().filter(|(k, _)| !known.contains(&k.as_str())) {
            errors.push(FieldError {
                path: k.clone(),
                message: format!("unknown parameter (known: {})", known.join(", ")),
            });
        }
    }
}

/// Entries one `GET /api/v1/events` returns at most.
const EVENTS_PAGE: u64 = 1000;

async fn get_events(State(api): State<Arc<Api>>, axum::extract::RawQuery(q): axum::extract::RawQuery) -> Response {
    let Some(obs) = api.backend.observe() else { return unavailable("event log") };
    let q = Query::new(q);
    let mut errors = Vec::new();
    q.unknown(&["since", "limit", "kind"], &mut errors);
    let since = q.number("since", 0, u64::MAX, &mut errors);
    let limit = q.number("limit", EVENTS_PAGE, EVENTS_PAGE, &mut errors);
    let kind = match q.get("kind") {
        None | Some("event") => Kind::Event,
        Some("debug") => Kind::Debug,
        Some(other) => {
            errors.push(FieldError { path: "kind".into(), message: format!("{other:?} is not event or debug") });
            Kind::Event
        }
    };
    if !errors.is_empty() {
        return field_errors("invalid query", errors);
    }
    let entries = match kind {
        Kind::Event => obs.events(since, limit as usize),
        Kind::Debug => obs.debug_lines(since, limit as usize),
    };
    let (dropped_events, dropped_debug) = obs.dropped();
    let last = entries.last().map_or(since, |e| e.seq);
    let entries: Vec<&crate::events::Event> = entries.iter().map(|e| &**e).collect();
    Json(serde_json::json!({
        "events": entries, "last_seq": last,
        "dropped": if kind == Kind::Event { dropped_events } else { dropped_debug },
    }))
    .into_response()
}

/// Server-Sent Events: `id:` is the entry's `seq`, `event:` its kind (`event` or `debug`), `data:` its
/// JSON; a client that fell behind gets an `event: lost` with how many it missed.
async fn stream_events(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Response {
    use axum::response::sse::{Event as Sse, KeepAlive};
    use tokio::sync::broadcast::error::RecvError;

    let Some(obs) = api.backend.observe() else { return unavailable("event log") };
    let q = Query::new(q);
    let mut errors = Vec::new();
    q.unknown(&["since"], &mut errors);
    let last_id = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
    let since = q.number("since", last_id.unwrap_or(u64::MAX), u64::MAX, &mut errors);
    if !errors.is_empty() {
        return field_errors("invalid query", errors);
    }
    // Subscribe first, then replay the rings: nothing falls between; the seq filter drops repeats.
    let rx = obs.subscribe();
    let mut backlog: Vec<_> = if since == u64::MAX {
        Vec::new()
    } else {
        let mut b = obs.events(since, crate::events::EVENTS_KEPT);
        b.extend(obs.debug_lines(since, crate::events::DEBUG_KEPT));
        b.sort_by_key(|e| e.seq);
        b
    };
    backlog.reverse();
    let sent = backlog.first().map_or(0, |e| e.seq);
    let to_sse = |e: &crate::events::Event| {
        let kind = if e.kind == Kind::Event { "event" } else { "debug" };
        Sse::default().id(e.seq.to_string()).event(kind).data(serde_json::to_string(e).unwrap_or_default())
    };
    let stream = futures_util::stream::unfold((rx, backlog, sent), move |(mut rx, mut backlog, sent)| async move {
        if let Some(e) = backlog.pop() {
            let item = to_sse(&e);
            return Some((Ok::<_, std::convert::Infallible>(item), (rx, backlog, sent)));
        }
        loop {
            match rx.recv().await {
                Ok(e) if e.seq <= sent => continue,
                Ok(e) => return Some((Ok(to_sse(&e)), (rx, backlog, e.seq))),
                Err(RecvError::Lagged(n)) => {
                    let item = Sse::default().event("lost").data(format!("{{\"lost\":{n}}}"));
                    return Some((Ok(item), (rx, backlog, sent)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    axum::response::sse::Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

async fn get_conditions(State(api): State<Arc<Api>>) -> Response {
    let Some(obs) = api.backend.observe() else { return unavailable("debug conditions") };
    Json(serde_json::json!({"conditions": obs.conditions().list()})).into_response()
}

async fn put_condition(State(api): State<Arc<Api>>, body: String) -> Response {
    let Some(obs) = api.backend.observe() else { return unavailable("debug conditions") };
    let v = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return not_json(e),
    };
    let c = match Condition::parse(&v) {
        Ok(c) => c,
        Err(fields) => return field_errors("invalid debug condition", fields),
    };
    if let Err(e) = obs.conditions().set(c) {
        return error(StatusCode::CONFLICT, e.to_string());
    }
    Json(serde_json::json!({"conditions": obs.conditions().list()})).into_response()
}

async fn delete_conditions(State(api): State<Arc<Api>>) -> Response {
    let Some(obs) = api.backend.observe() else { return unavailable("debug conditions") };
    Json(serde_json::json!({"removed": obs.conditions().clear()})).into_response()
}

async fn delete_condition(State(api): State<Arc<Api>>, Path(peer): Path<String>) -> Response {
    let Some(obs) = api.backend.observe() else { return unavailable("debug conditions") };
    let Ok(addr) = peer.parse::<std::net::IpAddr>() else {
        let f = FieldError { path: "peer".into(), message: format!("{peer:?} is not an IPv4 or IPv6 address") };
        return field_errors("invalid peer", vec![f]);
    };
    if !obs.conditions().remove(addr) {
        return error(StatusCode::NOT_FOUND, format!("no debug condition on {addr}"));
    }
    Json(serde_json::json!({"conditions": obs.conditions().list()})).into_response()
}

async fn capture_status(State(api): State<Arc<Api>>) -> Response {
    let Some(c) = api.backend.capture() else { return unavailable("packet capture") };
    Json(c.status()).into_response()
}

async fn capture_start(State(api): State<Arc<Api>>, body: String) -> Response {
    let Some(c) = api.backend.capture() else { return unavailable("packet capture") };
    let v = match serde_json::from_str(if body.trim().is_empty() { "{}" } else { &body }) {
        Ok(v) => v,
        Err(e) => return not_json(e),
    };
    let spec = match CaptureSpec::parse(&v, c.names()) {
        Ok(s) => s,
        Err(fields) => return field_errors("invalid capture", fields),
    };
    // The drainer thread starts off the async runtime's threads.
    let started = tokio::task::spawn_blocking(move || c.start(spec).map(|_| c.status())).await;
    match started {
        Ok(Ok(status)) => (StatusCode::CREATED, Json(status)).into_response(),
        Ok(Err(e @ CaptureError::Running(_))) => error(StatusCode::CONFLICT, e.to_string()),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("capture start: {e}")),
    }
}

async fn capture_stop(State(api): State<Arc<Api>>) -> Response {
    let Some(c) = api.backend.capture() else { return unavailable("packet capture") };
    // Stopping waits (briefly) for the drainer's last pass.
    match tokio::task::spawn_blocking(move || (c.stop(), c.status())).await {
        Ok((true, status)) => Json(status).into_response(),
        Ok((false, _)) => error(StatusCode::CONFLICT, "no capture is running"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("capture stop: {e}")),
    }
}

async fn capture_pcap(State(api): State<Arc<Api>>) -> Response {
    let Some(c) = api.backend.capture() else { return unavailable("packet capture") };
    let Some(pcap) = c.pcap() else { return error(StatusCode::NOT_FOUND, "no capture has run yet") };
    let id = c.status()["id"].as_u64().unwrap_or(0);
    let mut r = pcap.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.tcpdump.pcap"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"dmvpnd-capture-{id}.pcap\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// TLS material: PEM files, or a self-signed certificate made at start for `names`.
#[derive(Debug, Clone)]
pub enum Tls {
    /// Certificate chain and key, PEM.
    Pem {
        /// The certificate chain.
        cert: Vec<u8>,
        /// The private key.
        key: Vec<u8>,
    },
    /// A self-signed certificate for these DNS names or addresses.
    SelfSigned(Vec<String>),
}

/// Serves the API on `listen` over TLS until the process ends; `bound` receives the address actually
/// bound (port 0 picks one).
pub async fn serve(
    api: Arc<Api>,
    listen: SocketAddr,
    tls: Tls,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> std::io::Result<()> {
    // One process-wide provider: ring, which the data plane already uses.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cert, key) = match tls {
        Tls::Pem { cert, key } => (cert, key),
        Tls::SelfSigned(names) => {
            let c = rcgen::generate_simple_self_signed(names).map_err(std::io::Error::other)?;
            (c.cert.pem().into_bytes(), c.key_pair.serialize_pem().into_bytes())
        }
    };
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(cert, key).await?;
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    if let Some(bound) = bound {
        let _ = bound.send(listener.local_addr()?);
    }
    axum_server::from_tcp_rustls(listener, config).serve(router(api).into_make_service()).await
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_observe;
