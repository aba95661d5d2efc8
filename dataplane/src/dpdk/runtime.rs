//! The data plane started on DPDK from a hardware profile: what `dp-run` and `dmvpnd` share.
//!
//! Layer: start-up and shutdown around the workers. Contract:
//! - [`Runtime::start`] starts the EAL from the profile (with a distinct `--file-prefix`), creates the
//!   mbuf pool, opens the named profile ports in the order given (that order is the data plane's
//!   [`PortId`] numbering; RSS over each port's RX queues, one TX queue per worker), and launches one
//!   pinned [`Worker`] per worker lcore, all connected by handoff rings (each SA's packets go to its
//!   owner worker). Worker `i` polls RX queue `i` of each port that has it.
//! - While it runs, the caller (the main lcore) reads the workers' punt and SA-event rings and writes
//!   their inject rings through [`Runtime::workers`], allocates mbufs from [`Runtime::pool`], and reads
//!   every counter without stopping a worker ([`Runtime::stats`]).
//! - [`Runtime::stop`] stops the workers, lets them drain, empties the rings, stops the ports and checks
//!   that every mbuf went back to its pool; [`stop_signals`] gives the flag SIGTERM and SIGINT set.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use serde_json::{json, Value};
use thiserror::Error;

use super::eal::{tsc_hz, tsc_now};
use super::lcore::{self, LcoreCounters, PollMode};
use super::{publish_offloads, CryptoSetup, DpdkError, Eal, EthDev, Mbuf, Mempool, PortSetup, QueueCounters};
use crate::capture::Capture;
use crate::counters::WorkerCounters;
use crate::drop::DropReason;
use crate::ids::{PortId, SaIndex, WorkerId};
use crate::pipeline::HandoffRings;
use crate::punt::ControlRings;
use crate::tables::{TablesPublisher, TablesReader};
use crate::worker::Worker;
use hw_profiles::{Host, Profile, ProfileError};

/// Why the data plane did not start.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// `/sys` could not be read.
    #[error("reading this machine's cores and PCI devices from /sys: {0}")]
    Host(std::io::Error),
    /// The profile names cores or devices this machine lacks.
    #[error("profile {profile} does not fit this machine: {error}")]
    Profile {
        /// The profile.
        profile: String,
        /// What does not fit.
        error: ProfileError,
    },
    /// A port asked for is not in the profile.
    #[error("port {port:?} is not in profile {profile} (its ports: {ports})")]
    NoSuchPort {
        /// The port asked for.
        port: String,
        /// The profile.
        profile: String,
        /// The profile's ports.
        ports: String,
    },
    /// A port has fewer queue pairs than there are workers.
    #[error("port {0} has no queue pair for every worker")]
    Queues(String),
    /// A DPDK call failed.
    #[error("{context}: {error}")]
    Dpdk {
        /// What was being done.
        context: String,
        /// What DPDK said.
        error: DpdkError,
    },
    /// A worker lcore ended before reporting in.
    #[error("worker {0} died before starting")]
    WorkerDied(usize),
    /// The ports' offloads could not be published.
    #[error("publishing the ports' offloads: {0}")]
    Offloads(crate::tables::TablesError),
    /// A signal handler could not be installed.
    #[error("installing the SIGTERM handler: {0}")]
    Signal(std::io::Error),
}

fn dpdk(context: impl Into<String>) -> impl FnOnce(DpdkError) -> RuntimeError {
    let context = context.into();
    move |error| RuntimeError::Dpdk { context, error }
}

/// Entries in each worker's punt, inject and event rings, and in each handoff ring.
pub const RING_SIZE: usize = 4096;
/// Records the capture ring holds until management drains them.
pub const CAPTURE_RING: usize = 8192;

/// What the main lcore holds of one worker: its counters and rings, all readable while it runs.
#[derive(Debug)]
pub struct WorkerView {
    /// The lcore it is pinned to.
    pub lcore: u32,
    /// Its packet counters.
    pub counters: Arc<WorkerCounters>,
    /// Its poll-loop counters.
    pub lcore_counters: Arc<LcoreCounters>,
    /// Its punt, inject and SA-event rings.
    pub rings: Arc<ControlRings<Mbuf>>,
}

/// The running data plane.
#[derive(Debug)]
pub struct Runtime {
    eal: Eal,
    pool: Mempool,
    devs: Vec<EthDev>,
    views: Vec<WorkerView>,
    handoff: Arc<HandoffRings<Mbuf>>,
    crypto: CryptoSetup,
    stop: Arc<AtomicBool>,
    profile: String,
    capture: Arc<Capture>,
}

/// How the stop went: the pool's size and what was still out after the ports stopped.
#[derive(Debug, Clone, Copy)]
pub struct StopReport {
    /// Mbufs in the pool.
    pub size: u32,
    /// Mbufs not returned (0 on a clean stop).
    pub in_use: u32,
}

/// The flag that SIGTERM and SIGINT set (the caller's loop stops when it is set).
pub fn stop_signals() -> Result<Arc<AtomicBool>, RuntimeError> {
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, term.clone()).map_err(RuntimeError::Signal)?;
    }
    Ok(term)
}

impl Runtime {
    /// Starts the data plane: `ports` names profile ports, in [`PortId`] order; `reader` sees the
    /// tables the caller publishes; `seq_starts` are outbound sequence numbers to resume SAs from.
    pub fn start(
        profile: &Profile,
        ports: &[String],
        file_prefix: &str,
        reader: &TablesReader,
        seq_starts: &[(SaIndex, u64)],
    ) -> Result<Runtime, RuntimeError> {
        let host = Host::current().map_err(RuntimeError::Host)?;
        profile.check_host(&host).map_err(|error| RuntimeError::Profile { profile: profile.name.clone(), error })?;
        let mut port_order = Vec::new();
        for name in ports {
            let (_, pp) = profile.port(name).ok_or_else(|| RuntimeError::NoSuchPort {
                port: name.clone(),
                profile: profile.name.clone(),
                ports: profile.ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
            })?;
            port_order.push(pp.clone());
        }
        let workers = profile.workers.lcores.len();
        let eal = Eal::init(&profile.eal_args(file_prefix)).map_err(dpdk("starting DPDK"))?;
        let socket = profile.eal.hugepages.then(|| port_order.first().map_or(0, |p| p.socket));
        let pool = Mempool::new("dp_mbufs", profile.mempool.mbufs, profile.mempool.cache, socket)
            .map_err(dpdk("creating the mbuf pool"))?;
        let mut devs = Vec::new();
        for p in &port_order {
            let setup =
                PortSetup { rx_queues: p.rx_queues, tx_queues: workers as u16, rx_desc: p.rx_desc, tx_desc: p.tx_desc };
            let dev = EthDev::open(p.device.port_name(), setup, &pool).map_err(dpdk(format!(
                "opening port {} ({})",
                p.name,
                p.device.port_name()
            )))?;
            devs.push(dev);
        }
        let crypto = CryptoSetup::from_profile(&profile.crypto, workers, profile.workers.burst)
            .map_err(dpdk("starting the profile's crypto devices"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let mode = match profile.workers.poll {
            hw_profiles::PollMode::Busy => PollMode::Busy,
            hw_profiles::PollMode::Adaptive { idle_polls, max_sleep_us } => {
                PollMode::Adaptive { idle_polls, max_sleep: Duration::from_micros(u64::from(max_sleep_us)) }
            }
        };
        let handoff = Arc::new(HandoffRings::new(workers, RING_SIZE));
        let capture = Capture::new(CAPTURE_RING);
        let mut views = Vec::new();
        for (i, &lcore_id) in profile.workers.lcores.iter().enumerate() {
            let mut ports = Vec::new();
            for d in &devs {
                ports.push(d.worker_port(i as u16).ok_or_else(|| RuntimeError::Queues(d.name().to_owned()))?);
            }
            let rings = Arc::new(ControlRings::new(RING_SIZE));
            let lcore_counters = Arc::new(LcoreCounters::default());
            let (tx, rx) = mpsc::channel();
            let (reader, stop, lc, r) = (reader.clone(), stop.clone(), lcore_counters.clone(), rings.clone());
            let handoff = handoff.clone();
            let capture = capture.clone();
            let seq_starts = seq_starts.to_vec();
            let burst = usize::from(profile.workers.burst);
            let crypto = crypto.clone();
            // The worker is built on its own lcore (its crypto engine stays there) and hands its counters
            // back, or why it could not start.
            eal.launch(lcore_id, move || {
                let engine = match crypto.engine(i, burst) {
                    Ok(engine) => engine,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return 1;
                    }
                };
                let mut w = Worker::new(WorkerId(i as u16), ports, reader, engine, r, burst)
                    .with_handoff(handoff)
                    .with_capture(capture);
                for (sa, seq) in seq_starts {
                    w.set_outbound_seq(sa, seq);
                }
                if tx.send(Ok(w.counters.clone())).is_err() {
                    return 1;
                }
                lcore::run(&mut w, &stop, mode, &lc);
                0
            })
            .map_err(dpdk(format!("launching worker {i} on lcore {lcore_id}")))?;
            let counters = rx
                .recv()
                .map_err(|_| RuntimeError::WorkerDied(i))?
                .map_err(dpdk(format!("worker {i}: its crypto engine")))?;
            views.push(WorkerView { lcore: lcore_id, counters, lcore_counters, rings });
        }
        Ok(Runtime { eal, pool, devs, views, handoff, crypto, stop, profile: profile.name.clone(), capture })
    }

    /// The workers' packet capture (stopped until management starts it; see [`crate::capture`]).
    pub fn capture(&self) -> Arc<Capture> {
        self.capture.clone()
    }

    /// The workers' clock now, nanoseconds (the clock of [`crate::capture::Record::ts_ns`]).
    pub fn clock_ns() -> u64 {
        let hz = tsc_hz().max(1);
        (u128::from(tsc_now()) * 1_000_000_000 / u128::from(hz)) as u64
    }

    /// One line for the log: profile, ports, workers, mbufs, crypto engine.
    pub fn describe(&self) -> String {
        let lcores: Vec<u32> = self.views.iter().map(|v| v.lcore).collect();
        format!(
            "profile {}, {} ports, {} workers on lcores {lcores:?}, {} mbufs, crypto {}",
            self.profile,
            self.devs.len(),
            self.views.len(),
            self.pool.size(),
            self.crypto.describe()
        )
    }

    /// Marks in `publisher`'s tables the ports whose NICs do the IPv4 checksum (the pipeline then
    /// leaves it to them); publish afterwards.
    pub fn publish_offloads(&self, publisher: &mut TablesPublisher) -> Result<(), RuntimeError> {
        publish_offloads(publisher, &self.devs).map_err(RuntimeError::Offloads)
    }

    /// The workers, by [`WorkerId`].
    pub fn workers(&self) -> &[WorkerView] {
        &self.views
    }

    /// The ports, by [`PortId`].
    pub fn ports(&self) -> &[EthDev] {
        &self.devs
    }

    /// The MAC address of a port.
    pub fn mac(&self, port: PortId) -> Option<[u8; 6]> {
        self.devs.get(usize::from(port.0)).map(EthDev::mac)
    }

    /// The mbuf pool (for packets the control plane injects).
    pub fn pool(&self) -> &Mempool {
        &self.pool
    }

    /// Every counter, read while the workers run: per worker (packets, bytes, drops by reason, busy and
    /// idle cycles, ring occupancy), per port and per queue, and the pool.
    pub fn stats(&self) -> Value {
        let workers: Vec<Value> = self
            .views
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let c = &v.counters;
                let l = &v.lcore_counters;
                let drops: BTreeMap<&str, u64> = DropReason::ALL.iter().map(|r| (r.name(), c.drops_for(*r))).collect();
                json!({
                    "worker": i, "lcore": v.lcore,
                    "rx_packets": c.rx_packets.get(), "rx_bytes": c.rx_bytes.get(),
                    "tx_packets": c.tx_packets.get(), "tx_bytes": c.tx_bytes.get(),
                    "punted": c.punted.get(), "esp_decrypted": c.esp_decrypted.get(),
                    "esp_encrypted": c.esp_encrypted.get(), "icmp_sent": c.icmp_sent.get(),
                    "handed_off": c.handed_off.get(), "handoff_ring": self.handoff.pending(WorkerId(i as u16)),
                    "drops": drops,
                    "polls": l.polls.get(), "busy_polls": l.busy_polls.get(),
                    "busy_cycles": l.busy_cycles.get(), "idle_cycles": l.idle_cycles.get(), "sleeps": l.sleeps.get(),
                    "punt_ring": v.rings.punts.len(), "inject_ring": v.rings.injects.len(),
                    "event_ring": v.rings.events.len(),
                })
            })
            .collect();
        let ports: Vec<Value> = self
            .devs
            .iter()
            .map(|d| {
                let queues: Vec<Value> = d
                    .queue_counters()
                    .iter()
                    .enumerate()
                    .map(|(q, c)| {
                        json!({
                            "worker": q, "rx_packets": c.rx_packets.get(), "rx_bytes": c.rx_bytes.get(),
                            "rx_multiseg_dropped": c.rx_multiseg_dropped.get(),
                            "tx_packets": c.tx_packets.get(), "tx_bytes": c.tx_bytes.get(),
                            "tx_refused": c.tx_refused.get(),
                        })
                    })
                    .collect();
                let sum = |f: fn(&QueueCounters) -> u64| d.queue_counters().iter().map(|c| f(c)).sum::<u64>();
                let s = d.stats();
                json!({
                    "name": d.name(), "port_id": d.id(),
                    "rx_packets": sum(|c| c.rx_packets.get()), "rx_bytes": sum(|c| c.rx_bytes.get()),
                    "tx_packets": sum(|c| c.tx_packets.get()), "tx_bytes": sum(|c| c.tx_bytes.get()),
                    "tx_refused": sum(|c| c.tx_refused.get()),
                    "offloads": {
                        "rx_ipv4_csum": d.offloads().rx_ipv4_csum, "tx_ipv4_csum": d.offloads().tx_ipv4_csum,
                        "rx_vlan_strip": d.offloads().rx_vlan_strip, "tx_vlan_insert": d.offloads().tx_vlan_insert,
                    },
                    "device": {"ipackets": s.ipackets, "opackets": s.opackets, "imissed": s.imissed,
                               "ierrors": s.ierrors, "oerrors": s.oerrors, "rx_nombuf": s.rx_nombuf},
                    "queues": queues,
                })
            })
            .collect();
        let crypto: Vec<Value> = self
            .crypto
            .worker_counts()
            .iter()
            .map(|(dev, soft, sessions)| json!({"device_ops": dev, "software_ops": soft, "sessions": sessions}))
            .collect();
        json!({
            "workers": workers, "ports": ports,
            "mempool": {"size": self.pool.size(), "in_use": self.pool.in_use()},
            "crypto": {"engine": self.crypto.describe(), "workers": crypto},
        })
    }

    /// Stops the workers and waits for them; they drain their queues first. What they left on their
    /// rings stays there for the caller to read, until [`Self::finish`].
    pub fn halt(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.eal.wait_all();
    }

    /// After [`Self::halt`]: frees what is left on the rings, stops the ports, releases DPDK, and says
    /// how many mbufs did not come back to the pool (0 on a clean stop).
    pub fn finish(self) -> StopReport {
        for v in &self.views {
            while v.rings.punts.pop().is_some() {}
            while v.rings.injects.pop().is_some() {}
            while v.rings.events.pop().is_some() {}
        }
        let size = self.pool.size();
        let Runtime { eal, pool, devs, views, handoff, crypto, .. } = self;
        // Packets still parked between workers go back to the pool with the rings.
        drop(handoff);
        drop(devs);
        let in_use = pool.in_use();
        drop(views);
        drop(pool);
        drop(crypto);
        eal.cleanup();
        StopReport { size, in_use }
    }
}
