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
//! authorises and renders. The OpenAPI document (`openapi.rs`) is served and checked in as
//! `mgmt/openapi.json`.

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

use crate::config::store::{ConfigStore, StoreError};
use crate::config::{Config, ConfigError, FieldError};

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
        .route_layer(layer(Role::ReadOnly));
    let operate = Router::new()
        .route("/api/v1/config/validate", post(validate_config))
        .route("/api/v1/actions", post(act))
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
