//! Packet capture driven through the API: one capture at a time of a port's, a tunnel's or one peer's
//! packets, at the data plane's points (received, decrypted, before encryption, sent), into a pcap held
//! in memory until the next capture starts, bounded by packets, bytes and seconds.
//!
//! Layer: management, over [`dataplane::capture`]. Contract: [`CaptureControl::start`] arms the data
//! plane's filter and starts a drainer thread that moves records into the pcap every few milliseconds
//! and disarms the filter at the first bound reached (or at [`CaptureControl::stop`]); a record the
//! data plane could not queue is counted in `lost`, never waited for. The pcap (classic, nanosecond
//! timestamps on the wall clock, Ethernet link type) opens in Wireshark and tshark; the cleartext points
//! are GRE packets behind a made-up IPv4 header between the two NBMA addresses (see
//! [`dataplane::capture`]). A [`CaptureSpec`] is parsed from JSON with errors naming the field.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dataplane::capture::{Capture, Filter, Point};
use dataplane::ids::{PortId, TunnelId};
use dataplane::pcap::{Precision, Writer};
use serde_json::{json, Value};

use crate::config::FieldError;

/// Largest bounds an operator may ask for.
pub const MAX_PACKETS: u64 = 1_000_000;
/// See [`MAX_PACKETS`].
pub const MAX_BYTES: u64 = 64 << 20;
/// See [`MAX_PACKETS`].
pub const MAX_SECONDS: u64 = 3600;
/// Bounds when none is given.
const DEFAULT_PACKETS: u64 = 10_000;
const DEFAULT_SECONDS: u64 = 60;
/// How often the drainer empties the data plane's ring.
const DRAIN_EVERY: Duration = Duration::from_millis(10);

const POINTS: [Point; 4] = [Point::Rx, Point::Decrypted, Point::PreEncrypt, Point::Tx];

/// What to capture and when to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSpec {
    /// The data plane's filter.
    pub filter: Filter,
    /// Stop after this many packets.
    pub packets: u64,
    /// Stop after this many bytes (the packets' whole lengths).
    pub bytes: u64,
    /// Stop after this long.
    pub seconds: u64,
}

/// Names the box knows ports and tunnels by, for a [`CaptureSpec`] that names them.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Interface (port) names and their data-plane ids.
    pub ports: Vec<(String, PortId)>,
    /// Tunnel names and their ids.
    pub tunnels: Vec<(String, TunnelId)>,
}

impl Names {
    /// The ports of `plan` (by interface name, then by profile port name) and its tunnels.
    pub fn of(plan: &crate::plan::Plan) -> Names {
        let interfaces = plan.interfaces().iter().enumerate().map(|(i, f)| (f.name.clone(), PortId(i as u16)));
        let ports = plan.ports.iter().enumerate().map(|(i, n)| (n.clone(), PortId(i as u16)));
        let mut all: Vec<(String, PortId)> = Vec::new();
        for (name, id) in interfaces.chain(ports) {
            if !all.iter().any(|(n, _)| *n == name) {
                all.push((name, id));
            }
        }
        Names { ports: all, tunnels: plan.tunnels.iter().map(|t| (t.name.clone(), t.id)).collect() }
    }
}

impl CaptureSpec {
    /// A spec from the API's JSON: `{"peer": ADDRESS, "port": NAME|ID, "tunnel": NAME|ID, "points":
    /// ["rx", "decrypted", "pre-encrypt", "tx"], "packets": N, "bytes": N, "seconds": N}`, every field
    /// optional (no selector captures everything; the points default to all four; with no bound,
    /// 10,000 packets or 60 seconds). Each problem names its field.
    pub fn parse(v: &Value, names: &Names) -> Result<CaptureSpec, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut err = |path: &str, message: String| errors.push(FieldError { path: path.to_string(), message });
        let Some(obj) = v.as_object() else {
            return Err(vec![FieldError { path: String::new(), message: "a capture is a JSON object".into() }]);
        };
        let known = ["peer", "port", "tunnel", "points", "packets", "bytes", "seconds"];
        for key in obj.keys().filter(|k| !known.contains(&k.as_str())) {
            err(key, format!("unknown field (a capture has {})", known.join(", ")));
        }
        let mut filter = Filter { port: None, tunnel: None, peer: None, points: POINTS.to_vec() };
        match obj.get("peer") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => match s.parse::<IpAddr>() {
                Ok(a) => filter.peer = Some(a),
                Err(_) => err("peer", format!("{s:?} is not an IPv4 or IPv6 address")),
            },
            Some(other) => err("peer", format!("expected the peer's NBMA address as a string, got {other}")),
        }
        let by_name = |v: &Value, list: &[(String, u16)]| -> Result<u16, String> {
            let known = || list.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
            match v {
                Value::String(s) => list
                    .iter()
                    .find(|(n, _)| n == s)
                    .map(|(_, id)| *id)
                    .ok_or_else(|| format!("no {s:?} here (known: {})", known())),
                Value::Number(n) => n
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|id| list.iter().any(|(_, x)| x == id))
                    .ok_or_else(|| format!("no id {n} here (known: {})", known())),
                other => Err(format!("expected a name or an id, got {other}")),
            }
        };
        let ports: Vec<(String, u16)> = names.ports.iter().map(|(n, p)| (n.clone(), p.0)).collect();
        let tunnels: Vec<(String, u16)> = names.tunnels.iter().map(|(n, t)| (n.clone(), t.0)).collect();
        match obj.get("port") {
            None | Some(Value::Null) => {}
            Some(v) => match by_name(v, &ports) {
                Ok(id) => filter.port = Some(PortId(id)),
                Err(m) => err("port", m),
            },
        }
        match obj.get("tunnel") {
            None | Some(Value::Null) => {}
            Some(v) => match by_name(v, &tunnels) {
                Ok(id) => filter.tunnel = Some(TunnelId(id)),
                Err(m) => err("tunnel", m),
            },
        }
        match obj.get("points") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if items.is_empty() => {
                err("points", "empty: name at least one of rx, decrypted, pre-encrypt, tx".into())
            }
            Some(Value::Array(items)) => {
                filter.points.clear();
                for (i, item) in items.iter().enumerate() {
                    match POINTS.iter().find(|p| Some(p.name()) == item.as_str()) {
                        Some(p) if !filter.points.contains(p) => filter.points.push(*p),
                        Some(_) => {}
                        None => {
                            err(&format!("points[{i}]"), format!("{item} is not one of rx, decrypted, pre-encrypt, tx"))
                        }
                    }
                }
            }
            Some(other) => err("points", format!("expected a list of rx, decrypted, pre-encrypt, tx, got {other}")),
        }
        let mut bound = |name: &str, max: u64| -> Option<u64> {
            match obj.get(name) {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_u64() {
                    Some(n) if (1..=max).contains(&n) => Some(n),
                    _ => {
                        err(name, format!("expected a whole number from 1 to {max}, got {v}"));
                        None
                    }
                },
            }
        };
        let (packets, bytes, seconds) =
            (bound("packets", MAX_PACKETS), bound("bytes", MAX_BYTES), bound("seconds", MAX_SECONDS));
        if !errors.is_empty() {
            return Err(errors);
        }
        let any = packets.is_some() || bytes.is_some() || seconds.is_some();
        Ok(CaptureSpec {
            filter,
            packets: packets.unwrap_or(if any { MAX_PACKETS } else { DEFAULT_PACKETS }),
            bytes: bytes.unwrap_or(MAX_BYTES),
            seconds: seconds.unwrap_or(if any { MAX_SECONDS } else { DEFAULT_SECONDS }),
        })
    }

    fn to_json(&self) -> Value {
        let f = &self.filter;
        json!({
            "peer": f.peer.map(|a| a.to_string()), "port": f.port.map(|p| p.0), "tunnel": f.tunnel.map(|t| t.0),
            "points": f.points.iter().map(|p| p.name()).collect::<Vec<_>>(),
            "packets": self.packets, "bytes": self.bytes, "seconds": self.seconds,
        })
    }
}

/// Why a capture could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// One runs already.
    #[error("capture {0} is running; stop it first")]
    Running(u64),
    /// The drainer thread could not start.
    #[error("could not start the capture's drainer: {0}")]
    Thread(String),
}

#[derive(Debug, Default)]
struct Session {
    id: u64,
    spec: Option<CaptureSpec>,
    started_unix_ms: u64,
    elapsed: Duration,
    running: bool,
    stopped_by: Option<&'static str>,
    packets: u64,
    bytes: u64,
    pcap: Vec<u8>,
    lost: u64,
}

/// The box's one capture: start, stop, status and the pcap. Shared by the API's threads.
pub struct CaptureControl {
    capture: Arc<Capture>,
    clock_ns: Box<dyn Fn() -> u64 + Send + Sync>,
    names: Names,
    session: Mutex<Session>,
    stop: Arc<AtomicBool>,
}

impl core::fmt::Debug for CaptureControl {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CaptureControl").field("capture", &self.capture).finish()
    }
}

impl CaptureControl {
    /// Control of the data plane's `capture`, whose records carry `clock_ns` time; `names` are the
    /// ports and tunnels a spec may name.
    pub fn new(
        capture: Arc<Capture>,
        clock_ns: impl Fn() -> u64 + Send + Sync + 'static,
        names: Names,
    ) -> Arc<CaptureControl> {
        Arc::new(CaptureControl {
            capture,
            clock_ns: Box::new(clock_ns),
            names,
            session: Mutex::new(Session::default()),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The ports and tunnels a spec may name.
    pub fn names(&self) -> &Names {
        &self.names
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a capture (the previous one's pcap is dropped); its id.
    pub fn start(self: &Arc<Self>, spec: CaptureSpec) -> Result<u64, CaptureError> {
        let unix_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let offset = i128::from(unix_ns) - i128::from((self.clock_ns)());
        let id = {
            let mut s = self.session();
            if s.running {
                return Err(CaptureError::Running(s.id));
            }
            // What an earlier capture left in the ring is not this one's.
            while self.capture.take().is_some() {}
            let mut pcap = Vec::new();
            if Writer::new(&mut pcap, Precision::Nanos).is_err() {
                return Err(CaptureError::Thread("pcap header".into()));
            }
            *s = Session {
                id: s.id + 1,
                spec: Some(spec.clone()),
                started_unix_ms: unix_ns / 1_000_000,
                running: true,
                pcap,
                ..Session::default()
            };
            s.id
        };
        self.stop.store(false, Ordering::Relaxed);
        self.capture.start(spec.filter.clone());
        let me = self.clone();
        let lost_at_start = self.capture.lost();
        std::thread::Builder::new()
            .name("dmvpnd-capture".into())
            .spawn(move || me.drain(spec, offset, lost_at_start))
            .map_err(|e| {
                self.capture.stop();
                self.session().running = false;
                CaptureError::Thread(e.to_string())
            })?;
        Ok(id)
    }

    /// Stops the running capture (its pcap stays); whether one was running.
    pub fn stop(&self) -> bool {
        let running = self.session().running;
        if running {
            self.stop.store(true, Ordering::Relaxed);
            // The drainer takes what is left and marks the session done within DRAIN_EVERY.
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.session().running && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        running
    }

    fn drain(&self, spec: CaptureSpec, offset: i128, lost_at_start: u64) {
        let started = Instant::now();
        let limit = Duration::from_secs(spec.seconds);
        let mut stopped_by = None;
        while stopped_by.is_none() {
            std::thread::sleep(DRAIN_EVERY);
            if self.stop.load(Ordering::Relaxed) {
                self.capture.stop();
                stopped_by = Some("stopped");
            } else if started.elapsed() >= limit {
                self.capture.stop();
                stopped_by = Some("seconds");
            }
            let mut s = self.session();
            while let Some(r) = self.capture.take() {
                if s.packets >= spec.packets || s.bytes >= spec.bytes {
                    continue; // past the bound: the filter is off, these were in flight
                }
                let ts = (i128::from(r.ts_ns) + offset).max(0) as u64;
                append_record(&mut s.pcap, ts, r.data(), r.len);
                s.packets += 1;
                s.bytes += r.len as u64;
            }
            if stopped_by.is_none() && (s.packets >= spec.packets || s.bytes >= spec.bytes) {
                self.capture.stop();
                stopped_by = Some(if s.packets >= spec.packets { "packets" } else { "bytes" });
            }
            s.elapsed = started.elapsed();
        }
        let mut s = self.session();
        s.running = false;
        s.stopped_by = stopped_by;
        s.lost = self.capture.lost().saturating_sub(lost_at_start);
    }

    /// The capture's state as JSON: `state` (`idle`, `running`, `done`), id, spec, packets, bytes,
    /// `lost`, what stopped it.
    pub fn status(&self) -> Value {
        let s = self.session();
        let state = if s.running {
            "running"
        } else if s.spec.is_some() {
            "done"
        } else {
            "idle"
        };
        json!({
            "state": state, "id": s.id, "spec": s.spec.as_ref().map(CaptureSpec::to_json),
            "started": (s.started_unix_ms > 0).then(|| crate::events::rfc3339_ms(s.started_unix_ms)),
            "elapsed_ms": s.elapsed.as_millis() as u64,
            "packets": s.packets, "bytes": s.bytes, "lost": s.lost, "stopped_by": s.stopped_by,
            "pcap_bytes": s.pcap.len(),
        })
    }

    /// The pcap so far (the file header alone before any packet), or `None` if no capture ever ran.
    pub fn pcap(&self) -> Option<Vec<u8>> {
        let s = self.session();
        s.spec.is_some().then(|| s.pcap.clone())
    }
}

/// Appends a nanosecond pcap record (the header [`Writer::new`] wrote the file's), keeping the original
/// length of a packet cut at the snap length.
fn append_record(out: &mut Vec<u8>, ts_ns: u64, data: &[u8], len: usize) {
    let secs = (ts_ns / 1_000_000_000) as u32;
    let nanos = (ts_ns % 1_000_000_000) as u32;
    out.extend_from_slice(&secs.to_le_bytes());
    out.extend_from_slice(&nanos.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&(len.max(data.len()) as u32).to_le_bytes());
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn names() -> Names {
        Names {
            ports: vec![("wan".into(), PortId(0)), ("lan".into(), PortId(1))],
            tunnels: vec![("Tunnel1".into(), TunnelId(1))],
        }
    }

    #[test]
    fn a_spec_selects_by_name_or_id_and_is_always_bounded() {
        let s = CaptureSpec::parse(
            &json!({"peer": "203.0.113.10", "points": ["rx", "decrypted"], "packets": 50}),
            &names(),
        )
        .unwrap();
        assert_eq!(s.filter.peer, Some("203.0.113.10".parse().unwrap()));
        assert_eq!(s.filter.points, [Point::Rx, Point::Decrypted]);
        assert_eq!((s.packets, s.bytes, s.seconds), (50, MAX_BYTES, MAX_SECONDS));
        let s = CaptureSpec::parse(&json!({"port": "wan", "tunnel": 1}), &names()).unwrap();
        assert_eq!((s.filter.port, s.filter.tunnel), (Some(PortId(0)), Some(TunnelId(1))));
        assert_eq!(s.filter.points.len(), 4);
        assert_eq!((s.packets, s.seconds), (DEFAULT_PACKETS, DEFAULT_SECONDS), "no bound given: the defaults");
    }

    #[test]
    fn a_bad_spec_names_every_wrong_field() {
        let e = CaptureSpec::parse(
            &json!({"peer": "x", "port": "eth9", "tunnel": 7, "points": ["rx", "wire"], "packets": 0,
                    "seconds": 99999, "bytes": -1, "vrf": 1}),
            &names(),
        )
        .unwrap_err();
        let mut paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
        paths.sort();
        assert_eq!(paths, ["bytes", "packets", "peer", "points[1]", "port", "seconds", "tunnel", "vrf"]);
        assert!(e.iter().any(|e| e.message.contains("known: wan, lan")), "{e:?}");
        assert_eq!(CaptureSpec::parse(&json!("peer"), &names()).unwrap_err()[0].path, "");
    }

    #[test]
    fn a_capture_runs_once_at_a_time_stops_at_its_bound_and_yields_a_pcap() {
        let capture = Capture::new(16);
        let c = CaptureControl::new(capture, || 0, names());
        assert_eq!(c.status()["state"], "idle");
        assert!(c.pcap().is_none());
        let spec = CaptureSpec::parse(&json!({"peer": "203.0.113.10", "seconds": 1}), &names()).unwrap();
        let id = c.start(spec.clone()).unwrap();
        assert_eq!(c.status()["state"], "running");
        assert_eq!(c.start(spec.clone()), Err(CaptureError::Running(id)));
        std::thread::sleep(Duration::from_millis(1300));
        let st = c.status();
        assert_eq!((st["state"].as_str(), st["stopped_by"].as_str()), (Some("done"), Some("seconds")), "{st}");
        // A pcap with only its header: nanosecond magic, Ethernet.
        let pcap = c.pcap().unwrap();
        assert_eq!(pcap.len(), 24);
        assert_eq!(pcap[..4], 0xA1B2_3C4Du32.to_le_bytes());
        let id2 = c.start(spec).unwrap();
        assert_eq!(id2, id + 1);
        assert!(c.stop());
        assert_eq!(c.status()["stopped_by"], "stopped");
        assert!(!c.stop(), "nothing runs any more");
    }

    #[test]
    fn records_keep_their_original_length() {
        let mut out = Vec::new();
        append_record(&mut out, 1_796_536_145_123_456_789, &[1, 2, 3], 3000);
        assert_eq!(out[..4], 1_796_536_145u32.to_le_bytes());
        assert_eq!(out[4..8], 123_456_789u32.to_le_bytes());
        assert_eq!(out[8..12], 3u32.to_le_bytes());
        assert_eq!(out[12..16], 3000u32.to_le_bytes());
        assert_eq!(out[16..], [1, 2, 3]);
    }
}
