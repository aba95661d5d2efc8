//! The observability endpoints over real HTTPS (events, the event stream, debug conditions, packet
//! capture) against a box whose event hub and capture are real and whose data plane is idle.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::*;
use crate::capture::Names;
use crate::debug::Facility;

const HUB: &str = include_str!("../../configs/hub.toml");

struct ObsBox {
    obs: Arc<Observe>,
    capture: Arc<CaptureControl>,
}

impl Backend for ObsBox {
    fn apply(&self, _: &Config) -> Result<(), BackendError> {
        Ok(())
    }
    fn view(&self, _: View) -> Result<Value, BackendError> {
        Ok(Value::Null)
    }
    fn act(&self, _: &Action) -> Result<String, BackendError> {
        Ok(String::new())
    }
    fn metrics(&self) -> Result<String, BackendError> {
        Ok(String::new())
    }
    fn observe(&self) -> Option<Arc<Observe>> {
        Some(self.obs.clone())
    }
    fn capture(&self) -> Option<Arc<CaptureControl>> {
        Some(self.capture.clone())
    }
}

struct Server {
    base: String,
    client: reqwest::Client,
    obs: Arc<Observe>,
    t0: Instant,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dmvpnd.toml");
    std::fs::write(&path, HUB).unwrap();
    let t0 = Instant::now();
    let obs = Observe::new(t0, 1_796_537_345_000);
    let names = Names {
        ports: vec![("wan".into(), dataplane::ids::PortId(0))],
        tunnels: vec![("Tunnel1".into(), dataplane::ids::TunnelId(1))],
    };
    let capture = CaptureControl::new(dataplane::capture::Capture::new(64), || 0, names);
    let backend = Arc::new(ObsBox { obs: obs.clone(), capture });
    let tokens =
        vec![Token::new("monitoring", Role::ReadOnly, "read-secret"), Token::new("noc", Role::Operator, "op-secret")];
    let api = Api::new(tokens, ConfigStore::open(&path).unwrap(), backend);
    let (runtime, client, base) = tests::serve_https(api);
    Server { base, client, obs, t0, runtime, _dir: dir }
}

impl Server {
    fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        self.runtime.block_on(async {
            let r = req.send().await.unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        })
    }
}

fn paths(body: &Value) -> Vec<&str> {
    body["fields"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect()
}

#[test]
fn debug_conditions_are_for_operators_and_invalid_ones_name_the_field() {
    let s = start();
    let cond = json!({"peer": "203.0.113.10", "what": ["nhrp", "ike"]});
    let (status, _) = s.call(Method::PUT, "/api/v1/debug/conditions", "read-secret", Some(cond.clone()));
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = s.call(Method::PUT, "/api/v1/debug/conditions", "op-secret", Some(cond));
    assert_eq!(
        (status, &body["conditions"]),
        (StatusCode::OK, &json!([{"peer": "203.0.113.10", "what": ["nhrp", "ike"]}]))
    );
    assert!(s.obs.conditions().wants(Facility::Ike, |a| a.to_string() == "203.0.113.10"));

    let bad = json!({"peer": "203.0.113.300", "what": ["nhrp", "gre"]});
    let (status, body) = s.call(Method::PUT, "/api/v1/debug/conditions", "op-secret", Some(bad));
    assert_eq!((status, paths(&body)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["peer", "what[1]"]));
    let (status, _) = s.call(Method::PUT, "/api/v1/debug/conditions", "op-secret", Some(Value::String("{".into())));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a JSON string is not a condition");

    let (status, body) = s.call(Method::DELETE, "/api/v1/debug/conditions/10.9.9.9", "op-secret", None);
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = s.call(Method::DELETE, "/api/v1/debug/conditions/nope", "op-secret", None);
    assert_eq!((status, paths(&body)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["peer"]));
    let (status, body) = s.call(Method::DELETE, "/api/v1/debug/conditions/203.0.113.10", "op-secret", None);
    assert_eq!((status, &body["conditions"]), (StatusCode::OK, &json!([])));
    assert!(!s.obs.conditions().any());
    let (status, body) = s.call(Method::GET, "/api/v1/debug/conditions", "op-secret", None);
    assert_eq!((status, &body["conditions"]), (StatusCode::OK, &json!([])));
}

#[test]
fn recent_events_page_by_sequence_and_the_query_is_checked() {
    let s = start();
    for (i, name) in ["peer_up", "nhs_down", "peer_down"].iter().enumerate() {
        s.obs.event(s.t0 + Duration::from_millis(10 * i as u64), name, json!({"peer": "10.0.0.11"}));
    }
    s.obs.debug(s.t0, Facility::Nhrp, "nhrp_rx", json!({"peer": "10.0.0.11"}));
    let (status, body) = s.call(Method::GET, "/api/v1/events", "read-secret", None);
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["peer_up", "nhs_down", "peer_down"]);
    assert_eq!(body["events"][1]["time"], "2026-12-06T06:09:05.010Z");
    let (_, body) = s.call(Method::GET, "/api/v1/events?since=2&limit=5", "read-secret", None);
    assert_eq!(body["events"].as_array().unwrap().len(), 1);
    let (_, body) = s.call(Method::GET, "/api/v1/events?kind=debug", "read-secret", None);
    assert_eq!(body["events"][0]["facility"], "nhrp");
    let (status, body) = s.call(Method::GET, "/api/v1/events?since=-1&kind=all&x=1", "read-secret", None);
    assert_eq!((status, paths(&body)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["x", "since", "kind"]));
}

#[test]
fn the_stream_replays_since_a_sequence_then_follows_live() {
    let s = start();
    s.obs.event(s.t0, "peer_up", json!({"peer": "10.0.0.11"}));
    s.obs.event(s.t0, "peer_up", json!({"peer": "10.0.0.12"}));
    let url = format!("{}/api/v1/events/stream?since=1", s.base);
    let mut resp = s.runtime.block_on(s.client.get(url).bearer_auth("read-secret").send()).unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    s.obs.debug(s.t0 + Duration::from_millis(1500), Facility::Ike, "ike_rx", json!({"peer": "10.0.0.12"}));
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !text.contains("ike_rx") && Instant::now() < deadline {
        let chunk =
            s.runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await }).unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }
    let data: Vec<Value> =
        text.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(data.len(), 2, "{text}");
    assert_eq!((data[0]["seq"].as_u64(), data[0]["peer"].as_str()), (Some(2), Some("10.0.0.12")));
    assert_eq!((data[1]["kind"].as_str(), data[1]["time"].as_str()), (Some("debug"), Some("2026-12-06T06:09:06.500Z")));
    assert!(text.contains("event: debug\n") && text.contains("id: 3\n"), "{text}");
    let (status, body) = s.call(Method::GET, "/api/v1/events/stream?since=x", "read-secret", None);
    assert_eq!((status, paths(&body)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["since"]));
}

#[test]
fn a_capture_starts_once_stops_and_downloads_as_pcap() {
    let s = start();
    let (status, _) = s.call(Method::GET, "/api/v1/capture/pcap", "op-secret", None);
    assert_eq!(status, StatusCode::NOT_FOUND, "no capture yet");
    let bad = json!({"peer": "x", "tunnel": "Tunnel9", "points": ["wire"], "seconds": 0});
    let (status, body) = s.call(Method::POST, "/api/v1/capture", "op-secret", Some(bad));
    assert_eq!(
        (status, paths(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, vec!["peer", "tunnel", "points[0]", "seconds"])
    );
    let spec = json!({"peer": "203.0.113.10", "tunnel": "Tunnel1", "points": ["rx", "decrypted"], "packets": 10});
    assert_eq!(s.call(Method::POST, "/api/v1/capture", "read-secret", Some(spec.clone())).0, StatusCode::FORBIDDEN);
    let (status, body) = s.call(Method::POST, "/api/v1/capture", "op-secret", Some(spec.clone()));
    assert_eq!((status, body["state"].as_str()), (StatusCode::CREATED, Some("running")), "{body}");
    assert_eq!(body["spec"]["points"], json!(["rx", "decrypted"]));
    assert_eq!(s.call(Method::POST, "/api/v1/capture", "op-secret", Some(spec)).0, StatusCode::CONFLICT);
    let (status, body) = s.call(Method::POST, "/api/v1/capture/stop", "op-secret", None);
    assert_eq!((status, body["stopped_by"].as_str()), (StatusCode::OK, Some("stopped")));
    assert_eq!(s.call(Method::POST, "/api/v1/capture/stop", "op-secret", None).0, StatusCode::CONFLICT);
    let r = s
        .runtime
        .block_on(s.client.get(format!("{}/api/v1/capture/pcap", s.base)).bearer_auth("op-secret").send())
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/vnd.tcpdump.pcap");
    let pcap = s.runtime.block_on(r.bytes()).unwrap();
    assert_eq!(pcap[..4], 0xA1B2_3C4Du32.to_le_bytes());
}

#[test]
fn dmvpnctl_commands_go_through_the_api() {
    let s = start();
    let target = crate::ctl::Target { url: s.base.clone(), cacert: None, insecure: true, token: "op-secret".into() };
    let run = |words: &[&str]| {
        let mut out = Vec::new();
        crate::ctl::run(&target, words, &mut out).map(|()| String::from_utf8(out).unwrap())
    };
    let out = run(&["debug", "condition", "peer", "10.0.0.11", "nhrp", "esp"]).unwrap();
    assert_eq!(out, "Debug conditions:\n  peer 10.0.0.11: nhrp, esp\n");
    let e = run(&["debug", "condition", "peer", "10.0.0.11", "gre"]).unwrap_err().to_string();
    assert!(e.contains("422") && e.contains("what[0]"), "{e}");
    assert_eq!(run(&["undebug", "all"]).unwrap(), "1 debug conditions removed\n");
    s.obs.event(s.t0, "nhs_down", json!({"peer": "10.0.0.1", "reason": "registrations unanswered"}));
    let out = run(&["show", "events"]).unwrap();
    assert_eq!(out, "2026-12-06T06:09:05.000Z nhs_down peer=10.0.0.1 reason=registrations unanswered\n");
    let out = run(&["capture", "start", "peer", "203.0.113.10", "seconds", "1"]).unwrap();
    assert!(out.starts_with("Capture 1 running"), "{out}");
    assert!(run(&["capture", "stop"]).unwrap().contains("stopped by stopped"));
    let file = s._dir.path().join("c.pcap");
    let out = run(&["capture", "get", file.to_str().unwrap()]).unwrap();
    assert!(out.starts_with("24 bytes written"), "{out}");
}
