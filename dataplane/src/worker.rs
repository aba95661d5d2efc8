//! A worker: one lcore polling its queue of every port, running the [`Pipeline`] over each burst.
//!
//! The worker owns everything it writes (its SA runtime state, its counters, its scratch arrays) and
//! reads the control plane's tables through a [`TablesReader`], one snapshot per burst. It talks to
//! the management core only through its [`ControlRings`].

use std::sync::Arc;

use crate::counters::WorkerCounters;
use crate::crypto::CryptoEngine;
use crate::ids::{PortId, SaIndex, WorkerId};
use crate::pipeline::{HandoffRings, Pipeline};
use crate::port::Port;
use crate::punt::ControlRings;
use crate::sa::SaRtTable;
use crate::tables::TablesReader;

/// Largest burst a worker takes from one port at a time (VPP's frame size).
pub const MAX_BURST: usize = 256;

/// One worker and the ports it polls.
pub struct Worker<P: Port> {
    /// Which worker this is.
    pub id: WorkerId,
    /// Its ports, indexed by [`PortId`].
    pub ports: Vec<P>,
    /// Its counters, shared read-only with management.
    pub counters: Arc<WorkerCounters>,
    /// Its rings to the management core.
    pub rings: Arc<ControlRings<P::Buf>>,
    tables: TablesReader,
    sa_rt: SaRtTable,
    pipeline: Pipeline<P::Buf>,
    burst: Vec<P::Buf>,
    burst_size: usize,
    /// Generation of the tables last seen, to size the SA runtime table once per publication rather
    /// than on a packet.
    generation: u64,
}

impl<P: Port> core::fmt::Debug for Worker<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker").field("id", &self.id).field("ports", &self.ports.len()).finish()
    }
}

impl<P: Port> Worker<P> {
    /// A worker polling `ports`, taking bursts of up to `burst_size` (clamped to 1..=[`MAX_BURST`]).
    pub fn new(
        id: WorkerId,
        ports: Vec<P>,
        tables: TablesReader,
        engine: Box<dyn CryptoEngine<P::Buf>>,
        rings: Arc<ControlRings<P::Buf>>,
        burst_size: usize,
    ) -> Self {
        let burst_size = burst_size.clamp(1, MAX_BURST);
        Self {
            id,
            pipeline: Pipeline::new(id, engine, ports.len()),
            ports,
            counters: Arc::new(WorkerCounters::default()),
            rings,
            tables,
            sa_rt: SaRtTable::default(),
            burst: Vec::with_capacity(MAX_BURST),
            burst_size,
            generation: u64::MAX,
        }
    }

    /// Connects the worker to the others of its dataplane: each SA's packets are handed to its owner
    /// ([`crate::sa::SaConfig::owner`]), the one writer of its sequence number and replay window. A worker
    /// without handoff runs every SA itself, which is right only when it is the only worker.
    pub fn with_handoff(mut self, rings: Arc<HandoffRings<P::Buf>>) -> Self {
        self.pipeline = self.pipeline.with_handoff(rings);
        self
    }

    /// Lets management capture this worker's packets (see [`crate::capture`]).
    pub fn with_capture(mut self, capture: Arc<crate::capture::Capture>) -> Self {
        self.pipeline = self.pipeline.with_capture(capture);
        self
    }

    /// Outbound SA `sa` continues after sequence number `last` (an SA whose state moved here).
    pub fn set_outbound_seq(&mut self, sa: SaIndex, last: u64) {
        let tables = self.tables.load();
        if let Some(mut entry) = self.sa_rt.entry(tables.sas(), sa) {
            entry.resume_after(last);
        };
    }

    /// Polls every port once, the inject ring once and the handoff ring once; `now_ns` is the clock (nanoseconds, any epoch)
    /// for rate limits and lifetimes. Returns the number of packets handled, so that an adaptive poller
    /// can back off when it is zero.
    pub fn poll(&mut self, now_ns: u64) -> usize {
        self.sa_rt.set_clock(now_ns);
        let tables = self.tables.load();
        if tables.generation() != self.generation {
            self.generation = tables.generation();
            self.sa_rt.reserve(tables.sas());
        }
        let mut handled =
            self.pipeline.inject(&tables, &mut self.sa_rt, &self.counters, &self.rings, &mut self.ports, now_ns);
        handled +=
            self.pipeline.handoffs(&tables, &mut self.sa_rt, &self.counters, &self.rings, &mut self.ports, now_ns);
        for i in 0..self.ports.len() {
            self.burst.clear();
            let n = self.ports[i].rx_burst(&mut self.burst, self.burst_size);
            if n == 0 {
                continue;
            }
            handled += n;
            self.pipeline.process(
                &tables,
                &mut self.sa_rt,
                &self.counters,
                &self.rings,
                PortId(i as u16),
                &mut self.burst,
                &mut self.ports,
                now_ns,
            );
        }
        handled
    }
}
