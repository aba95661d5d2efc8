//! The API over real HTTPS: a server on a loopback port with a certificate made for the test, a client
//! that trusts only that certificate, and a backend that records what it was asked.

use std::sync::Mutex;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::*;

const HUB: &str = include_str!("../../configs/hub.toml");

/// A box that records the configurations applied and refuses those named "refuse-me".
#[derive(Default)]
struct FakeBox {
    applied: Mutex<Vec<String>>,
}

impl Backend for FakeBox {
    fn apply(&self, config: &Config) -> Result<(), BackendError> {
        if config.hostname == "refuse-me" {
            return Err(BackendError::Refused("port0 is not in the hardware profile".into()));
        }
        self.applied.lock().unwrap().push(config.hostname.clone());
        Ok(())
    }

    fn view(&self, view: View) -> Result<Value, BackendError> {
        Ok(json!({"view": view}))
    }

    fn act(&self, action: &Action) -> Result<String, BackendError> {
        match action {
            Action::ClearNhrp { tunnel, .. } if tunnel != "Tunnel1" => {
                Err(BackendError::NotFound(format!("no tunnel {tunnel:?}")))
            }
            a => Ok(format!("{a:?}")),
        }
    }

    fn metrics(&self) -> Result<String, BackendError> {
        Ok("# TYPE dmvpn_peers gauge\ndmvpn_peers 3\n".into())
    }
}

struct Server {
    base: String,
    client: reqwest::Client,
    fake: Arc<FakeBox>,
    dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dmvpnd.toml");
    std::fs::write(&path, HUB).unwrap();
    let store = ConfigStore::open(&path).unwrap();
    let fake = Arc::new(FakeBox::default());
    let tokens = vec![
        Token::new("monitoring", Role::ReadOnly, "read-secret"),
        Token::new("noc", Role::Operator, "op-secret"),
        Token::new("automation", Role::Admin, "admin-secret"),
    ];
    let api = Api::new(tokens, store, fake.clone());
    let (runtime, client, base) = serve_https(api);
    Server { base, client, fake, dir, _runtime: runtime }
}

/// Serves `api` over HTTPS on a free loopback port with a fresh self-signed certificate; returns the
/// runtime it runs on, a client that trusts the certificate, and the base URL.
pub(super) fn serve_https(api: Arc<Api>) -> (tokio::runtime::Runtime, reqwest::Client, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let tls = Tls::Pem { cert: cert.cert.pem().into_bytes(), key: cert.key_pair.serialize_pem().into_bytes() };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    runtime.spawn(serve(api, "127.0.0.1:0".parse().unwrap(), tls, Some(tx)));
    let addr = runtime.block_on(rx).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    (runtime, client, format!("https://localhost:{}", addr.port()))
}

impl Server {
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        self._runtime.block_on(async {
            let r = req.send().await.unwrap();
            let (status, headers) = (r.status(), r.headers().clone());
            (status, headers, r.text().await.unwrap())
        })
    }

    fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, HeaderMap, String) {
        self.call(reqwest::Method::GET, path, token, &[], None)
    }
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn tokens_and_roles() {
    let s = start();
    let (status, headers, body) = s.get("/api/v1/config", None);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert!(json_of(&body)["error"].as_str().unwrap().starts_with("missing bearer token"));
    assert_eq!(s.get("/api/v1/config", Some("guess")).0, StatusCode::UNAUTHORIZED);
    assert_eq!(s.get("/api/v1/config", Some("read-secret")).0, StatusCode::OK);
    assert_eq!(s.get("/metrics", Some("read-secret")).0, StatusCode::OK);

    let action = Some(json!({"action": "drain", "enable": true}).to_string());
    let (status, _, body) = s.call(reqwest::Method::POST, "/api/v1/actions", Some("read-secret"), &[], action.clone());
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(s.call(reqwest::Method::POST, "/api/v1/actions", Some("op-secret"), &[], action).0, StatusCode::OK);
    let put =
        s.call(reqwest::Method::PUT, "/api/v1/config", Some("op-secret"), &[("if-match", "\"x\"")], Some("{}".into()));
    assert_eq!(put.0, StatusCode::FORBIDDEN);
    // The document is public.
    let (status, _, body) = s.get("/api/v1/openapi.json", None);
    assert_eq!((status, json_of(&body)["openapi"].as_str()), (StatusCode::OK, Some("3.0.3")));
}

#[test]
fn configuration_changes_are_validated_applied_persisted_and_never_merged() {
    let s = start();
    let (_, headers, body) = s.get("/api/v1/config", Some("read-secret"));
    let etag = headers["etag"].to_str().unwrap().to_string();
    let mut config: Config = serde_json::from_str(&body).unwrap();
    assert_eq!(config, Config::from_toml(HUB).unwrap());
    let admin = Some("admin-secret");
    let put = |headers: &[(&str, &str)], c: &Config| {
        s.call(reqwest::Method::PUT, "/api/v1/config", admin, headers, Some(serde_json::to_string(c).unwrap()))
    };

    // Without If-Match: refused.
    config.hostname = "hub1-renamed".into();
    assert_eq!(put(&[], &config).0, StatusCode::PRECONDITION_REQUIRED);

    // Invalid: every problem with its path, nothing applied.
    let mut bad = config.clone();
    bad.tunnels[0].mtu = 100;
    bad.tunnels[1].protection = Some("nope".into());
    let (status, _, body) = put(&[("if-match", &etag)], &bad);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        json_of(&body)["fields"],
        json!([
            {"path": "tunnels[0].mtu", "message": "100 is outside 576..=9000"},
            {"path": "tunnels[1].protection", "message": "no IPsec profile named \"nope\""}
        ])
    );
    // Unparsable: the path of the field.
    let (status, _, body) = s.call(
        reqwest::Method::PUT,
        "/api/v1/config",
        admin,
        &[("if-match", &etag)],
        Some(r#"{"version": 1, "tunnels": [{"name": 5}]}"#.into()),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&body)["fields"][0]["path"], "tunnels[0].name");
    // The box refuses it: nothing persisted.
    let mut refused = config.clone();
    refused.hostname = "refuse-me".into();
    let (status, _, body) = put(&[("if-match", &etag)], &refused);
    assert_eq!(
        (status, json_of(&body)["error"].as_str()),
        (StatusCode::CONFLICT, Some("port0 is not in the hardware profile"))
    );
    assert!(s.fake.applied.lock().unwrap().is_empty());

    // A good change lands: applied, persisted, new ETag.
    let (status, headers, _) = put(&[("if-match", &etag)], &config);
    assert_eq!(status, StatusCode::OK);
    let new_etag = headers["etag"].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    assert_eq!(*s.fake.applied.lock().unwrap(), ["hub1-renamed"]);
    let on_disk = Config::from_toml(&std::fs::read_to_string(s.dir.path().join("dmvpnd.toml")).unwrap()).unwrap();
    assert_eq!(on_disk.hostname, "hub1-renamed");

    // A second change made against the old revision is refused, not merged.
    let mut stale = Config::from_toml(HUB).unwrap();
    stale.tunnels[0].mtu = 1380;
    let (status, _, body) = put(&[("if-match", &etag)], &stale);
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert_eq!(s.get("/api/v1/config", Some("read-secret")).1["etag"].to_str().unwrap(), new_etag);

    // Validation alone, for an operator.
    let (status, _, body) = s.call(
        reqwest::Method::POST,
        "/api/v1/config/validate",
        Some("op-secret"),
        &[],
        Some(serde_json::to_string(&bad).unwrap()),
    );
    assert_eq!(
        (status, json_of(&body)["fields"].as_array().map(Vec::len)),
        (StatusCode::UNPROCESSABLE_ENTITY, Some(2))
    );
}

#[test]
fn views_actions_and_metrics() {
    let s = start();
    let (status, _, body) = s.get("/api/v1/views/dmvpn", Some("read-secret"));
    assert_eq!((status, json_of(&body)), (StatusCode::OK, json!({"view": "dmvpn"})));
    assert_eq!(s.get("/api/v1/views/bgp", Some("read-secret")).0, StatusCode::NOT_FOUND);
    assert_eq!(s.get("/api/v1/nothing", Some("read-secret")).0, StatusCode::NOT_FOUND);

    let op = Some("op-secret");
    let post = |body: &str| s.call(reqwest::Method::POST, "/api/v1/actions", op, &[], Some(body.into()));
    let (status, _, body) = post(r#"{"action": "clear-nhrp", "tunnel": "Tunnel1", "address": "10.0.0.11"}"#);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(post(r#"{"action": "clear-nhrp", "tunnel": "Tunnel9"}"#).0, StatusCode::NOT_FOUND);
    assert_eq!(post(r#"{"action": "reboot"}"#).0, StatusCode::BAD_REQUEST);
    assert_eq!(post(r#"{"action": "clear-peer", "nbma": "not-an-address"}"#).0, StatusCode::BAD_REQUEST);

    let (status, headers, body) = s.get("/metrics", Some("read-secret"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/plain; version=0.0.4");
    assert!(body.contains("dmvpn_peers 3"));
}

#[test]
fn the_checked_in_openapi_document_is_the_served_one() {
    let served = document();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let checked_in: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(
        checked_in == served,
        "mgmt/openapi.json is stale: regenerate it with `cargo run -p mgmt --bin dmvpn-openapi > mgmt/openapi.json`"
    );
}

#[test]
fn token_file_names_the_bad_field() {
    let h = hex::encode(Sha256::digest(b"s3cret"));
    let ok = format!("[[tokens]]\nname = \"noc\"\nrole = \"operator\"\nsha256 = \"{}\"\n", h.to_uppercase());
    assert_eq!(load_tokens(&ok).unwrap(), vec![Token::new("noc", Role::Operator, "s3cret")]);
    let bad = "[[tokens]]\nname = \"noc\"\nrole = \"operator\"\nsha256 = \"abc\"\n";
    assert_eq!(load_tokens(bad).unwrap_err(), "tokens[0].sha256: not a SHA-256 in hex (64 hex digits)");
    let role = format!("[[tokens]]\nname = \"noc\"\nrole = \"root\"\nsha256 = \"{h}\"\n");
    assert!(load_tokens(&role).unwrap_err().contains("role"));
}
