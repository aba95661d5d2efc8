//! Events and conditional debug lines: what the control loop tells the operator, with millisecond
//! timestamps, kept in bounded rings and fanned out to streaming clients.
//!
//! Layer: management, shared between the control loop (which records) and the REST API's threads
//! (which read and stream). Contract:
//! - An [`Event`] is one flat JSON object: `seq` (increasing, per box), `time` (UTC, RFC 3339 with
//!   milliseconds), `t_ms` (milliseconds since the daemon started), `kind` (`event` or `debug`),
//!   `event` (its name: `peer_up`, `nhs_down`, `ike_sa_up`, `nhrp_rx`, ...), the debug `facility`
//!   (`nhrp`, `ike`, `esp`) and the fields of that event (`peer`, `nbma`, `tunnel`, `reason`, ...).
//! - [`Observe::event`] and [`Observe::debug`] never block on a reader: each ring keeps the newest
//!   [`EVENTS_KEPT`] / [`DEBUG_KEPT`] entries (older ones are counted as dropped), and a streaming
//!   client that falls behind by more than [`STREAM_BACKLOG`] lines is told how many it lost.
//! - Every record is also a `tracing` event (target `dmvpnd::event` or `dmvpnd::debug`, with the fields
//!   `event`, `peer`, `nbma`, `tunnel`, `reason`); without a `tracing` subscriber the JSON line goes to
//!   standard error, the daemon's log.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::debug::{Conditions, Facility};

/// Events (peer, NHS, IKE SA up and down, ...) kept for `GET /api/v1/events` and the status.
pub const EVENTS_KEPT: usize = 1000;
/// Conditional debug lines kept.
pub const DEBUG_KEPT: usize = 2000;
/// Lines a streaming client may fall behind before it loses some.
pub const STREAM_BACKLOG: usize = 4096;

/// An event or a debug line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A state change every operator wants (peer up, NHS down, ...).
    Event,
    /// A line of conditional debug (only for peers a condition names).
    Debug,
}

/// One event or debug line (see the module documentation for its JSON form).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Increasing number, one sequence for events and debug lines together.
    pub seq: u64,
    /// Wall-clock time, UTC, RFC 3339 with milliseconds.
    pub time: String,
    /// Milliseconds since the daemon started.
    pub t_ms: u64,
    /// Event or debug line.
    pub kind: Kind,
    /// What happened.
    pub event: String,
    /// The debug facility (debug lines only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facility: Option<Facility>,
    /// Its fields: `peer`, `nbma`, `tunnel`, `reason` where they apply, and the rest of the detail.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl Event {
    /// A field as text (strings as they are, other values as JSON).
    pub fn field(&self, name: &str) -> Option<String> {
        self.fields.get(name).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
    }
}

/// A bounded ring of the newest entries, with a count of those pushed out.
#[derive(Debug)]
pub struct Ring {
    entries: VecDeque<Arc<Event>>,
    capacity: usize,
    dropped: u64,
}

impl Ring {
    /// An empty ring keeping at most `capacity` entries.
    pub fn new(capacity: usize) -> Ring {
        Ring { entries: VecDeque::with_capacity(capacity.min(1024)), capacity: capacity.max(1), dropped: 0 }
    }

    /// Adds `e`, pushing out the oldest when full.
    pub fn push(&mut self, e: Arc<Event>) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
            self.dropped += 1;
        }
        self.entries.push_back(e);
    }

    /// The entries with `seq` above `since`, oldest first, at most `limit` of the newest.
    pub fn since(&self, since: u64, limit: usize) -> Vec<Arc<Event>> {
        let start = self.entries.partition_point(|e| e.seq <= since);
        let n = self.entries.len() - start;
        self.entries.iter().skip(start + n.saturating_sub(limit)).cloned().collect()
    }

    /// Entries pushed out since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The observability hub of one daemon: the event and debug rings, the debug conditions, and the
/// stream that every API client subscribes to.
pub struct Observe {
    start: Instant,
    start_unix_ms: u64,
    seq: AtomicU64,
    events: Mutex<Ring>,
    debug_lines: Mutex<Ring>,
    stream: tokio::sync::broadcast::Sender<Arc<Event>>,
    conditions: Conditions,
}

impl core::fmt::Debug for Observe {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Observe").field("seq", &self.seq.load(Ordering::Relaxed)).finish()
    }
}

impl Observe {
    /// A hub whose clock starts at `start`, which was `start_unix_ms` on the wall clock.
    pub fn new(start: Instant, start_unix_ms: u64) -> Arc<Observe> {
        let (stream, _) = tokio::sync::broadcast::channel(STREAM_BACKLOG);
        Arc::new(Observe {
            start,
            start_unix_ms,
            seq: AtomicU64::new(0),
            events: Mutex::new(Ring::new(EVENTS_KEPT)),
            debug_lines: Mutex::new(Ring::new(DEBUG_KEPT)),
            stream,
            conditions: Conditions::default(),
        })
    }

    /// A hub starting now (reads the wall clock once).
    pub fn starting_now(start: Instant) -> Arc<Observe> {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Observe::new(start, unix)
    }

    /// The debug conditions (set through the API, read by the control loop).
    pub fn conditions(&self) -> &Conditions {
        &self.conditions
    }

    /// Records an event.
    pub fn event(&self, now: Instant, event: &str, fields: Value) -> Arc<Event> {
        let e = self.make(now, Kind::Event, event, None, fields);
        tracing::info!(target: "dmvpnd::event", event = %e.event, peer = e.field("peer"), nbma = e.field("nbma"),
                       tunnel = e.field("tunnel"), reason = e.field("reason"), seq = e.seq, t_ms = e.t_ms);
        self.record(&self.events, e)
    }

    /// Records a conditional debug line (the caller checked [`Conditions::wants`]).
    pub fn debug(&self, now: Instant, facility: Facility, event: &str, fields: Value) -> Arc<Event> {
        let e = self.make(now, Kind::Debug, event, Some(facility), fields);
        tracing::debug!(target: "dmvpnd::debug", facility = facility.name(), event = %e.event,
                        peer = e.field("peer"), nbma = e.field("nbma"), tunnel = e.field("tunnel"),
                        reason = e.field("reason"), seq = e.seq, t_ms = e.t_ms);
        self.record(&self.debug_lines, e)
    }

    fn make(&self, now: Instant, kind: Kind, event: &str, facility: Option<Facility>, fields: Value) -> Event {
        let t_ms = now.saturating_duration_since(self.start).as_millis() as u64;
        let fields = match fields {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => Map::from_iter([("detail".to_string(), other)]),
        };
        Event {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            time: rfc3339_ms(self.start_unix_ms + t_ms),
            t_ms,
            kind,
            event: event.to_string(),
            facility,
            fields,
        }
    }

    fn record(&self, ring: &Mutex<Ring>, e: Event) -> Arc<Event> {
        let e = Arc::new(e);
        if !tracing::dispatcher::has_been_set() {
            if let Ok(line) = serde_json::to_string(&*e) {
                eprintln!("dmvpnd: {line}");
            }
        }
        ring.lock().unwrap_or_else(|p| p.into_inner()).push(e.clone());
        // No subscriber is not an error: the line is in the ring.
        let _ = self.stream.send(e.clone());
        e
    }

    /// Events newer than `since`, oldest first, at most `limit`.
    pub fn events(&self, since: u64, limit: usize) -> Vec<Arc<Event>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).since(since, limit)
    }

    /// Debug lines newer than `since`, oldest first, at most `limit`.
    pub fn debug_lines(&self, since: u64, limit: usize) -> Vec<Arc<Event>> {
        self.debug_lines.lock().unwrap_or_else(|p| p.into_inner()).since(since, limit)
    }

    /// Events and debug lines pushed out of their rings (`(events, debug)`).
    pub fn dropped(&self) -> (u64, u64) {
        let e = self.events.lock().unwrap_or_else(|p| p.into_inner()).dropped();
        let d = self.debug_lines.lock().unwrap_or_else(|p| p.into_inner()).dropped();
        (e, d)
    }

    /// A receiver of every event and debug line recorded from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Event>> {
        self.stream.subscribe()
    }
}

/// `unix_ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian, UTC).
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let (secs, ms) = (unix_ms / 1000, unix_ms % 1000);
    let (days, sod) = (secs / 86_400, secs % 86_400);
    // Days to civil date (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", sod / 3600, sod / 60 % 60, sod % 60)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        // `date -u -d @1796537345` = Sun Dec  6 06:09:05 UTC 2026.
        assert_eq!(rfc3339_ms(1_796_537_345_123), "2026-12-06T06:09:05.123Z");
        assert_eq!(rfc3339_ms(951_782_400_007), "2000-02-29T00:00:00.007Z");
        assert_eq!(rfc3339_ms(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn ring_keeps_the_newest_and_counts_the_rest() {
        let obs = Observe::new(Instant::now(), 0);
        let mut ring = Ring::new(3);
        for i in 0..5 {
            ring.push(obs.make(obs.start, Kind::Event, &format!("e{i}"), None, Value::Null).into());
        }
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.dropped(), 2);
        let names = |v: Vec<Arc<Event>>| v.iter().map(|e| e.event.clone()).collect::<Vec<_>>();
        assert_eq!(names(ring.since(0, 10)), ["e2", "e3", "e4"]);
        assert_eq!(names(ring.since(4, 10)), ["e4"]);
        assert_eq!(names(ring.since(5, 10)), Vec::<String>::new());
        assert_eq!(names(ring.since(0, 2)), ["e3", "e4"], "the newest when limited");
    }

    #[test]
    fn events_carry_their_fields_a_sequence_and_a_millisecond_time() {
        let t0 = Instant::now();
        let obs = Observe::new(t0, 1_796_534_945_000);
        let mut rx = obs.subscribe();
        let e = obs.event(
            t0 + Duration::from_millis(1234),
            "peer_up",
            json!({"peer": "10.0.0.11", "nbma": "203.0.113.10", "tunnel": "Tunnel1", "reason": "registered"}),
        );
        let d = obs.debug(t0 + Duration::from_millis(1300), Facility::Nhrp, "nhrp_rx", json!({"peer": "10.0.0.11"}));
        let v = serde_json::to_value(&*e).unwrap();
        assert_eq!(v["time"], "2026-12-06T05:29:06.234Z");
        assert_eq!(v["t_ms"], 1234);
        assert_eq!(v["kind"], "event");
        assert_eq!(v["event"], "peer_up");
        assert_eq!(v["nbma"], "203.0.113.10");
        assert!(v.get("facility").is_none());
        assert_eq!(serde_json::to_value(&*d).unwrap()["facility"], "nhrp");
        assert!(d.seq > e.seq);
        // Events and debug lines keep to their own rings; the stream sees both, in order.
        assert_eq!(obs.events(0, 100).len(), 1);
        assert_eq!(obs.debug_lines(0, 100).len(), 1);
        assert_eq!(rx.try_recv().unwrap().event, "peer_up");
        assert_eq!(rx.try_recv().unwrap().event, "nhrp_rx");
    }

    #[test]
    fn a_slow_stream_client_learns_how_much_it_lost_and_never_blocks_the_recorder() {
        let t0 = Instant::now();
        let obs = Observe::new(t0, 0);
        let mut rx = obs.subscribe();
        for _ in 0..STREAM_BACKLOG + 10 {
            obs.event(t0, "tick", Value::Null);
        }
        assert!(matches!(rx.try_recv(), Err(tokio::sync::broadcast::error::TryRecvError::Lagged(10))));
        assert_eq!(obs.dropped(), (STREAM_BACKLOG as u64 + 10 - EVENTS_KEPT as u64, 0));
    }
}
