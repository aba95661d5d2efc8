//! `dpdk-bench`: the hub's pipeline on DPDK mbufs and `net_ring` ports, beside the in-memory pipeline.
//!
//! ```text
//! cargo run --release -p perf --bin dpdk-bench [-- --seconds S --spokes N --workers 1,2 --engines software,cryptodev]
//! ```
//!
//! Each worker lcore runs `dataplane::dpdk::lcore::run` (busy polling) over two `net_ring` ports
//! (WAN, LAN) of its own, exactly as `dp-run` runs them; the main lcore is the traffic generator: it
//! takes the transmitted mbufs back off the TX rings, refills them with fresh frames (LAN→tunnel:
//! cleartext UDP for the worker's spokes; tunnel→LAN: GRE in ESP from the worker's spokes, encrypted
//! with fresh sequence numbers), and enqueues them on the RX ring in chunks, so the worker sees full
//! bursts. The kernel is not involved.
//!
//! Reported per (workers, path, frame size): Mpps **per worker core** (packets over the TSC cycles of
//! the worker's polls that found work, so the generator's own speed and a shared VM's other load stay
//! out of it), the wall-clock Mpps of all workers together (bounded by the generator on a small VM),
//! the in-memory pipeline's Mpps (`perf::traffic`, one core, same spokes, path and size) and the ratio
//! of the two per-core figures: the cost of DPDK I/O. A run fails if any packet is dropped or an mbuf is
//! not back in the pool afterwards. Spokes are split between workers (spoke `i` to worker `i % W`), as
//! SA ownership will split them.
//!
//! Each cell runs with each crypto engine: `software` (the default backend on the worker's core) and
//! `cryptodev` (AES-GCM on a `crypto_aesni_gcm` vdev, intel-ipsec-mb, one queue pair per worker, through
//! `dataplane::dpdk::CryptodevEngine`); a cryptodev run fails unless every ESP op ran on the device.

#![allow(clippy::print_stdout, reason = "a report binary prints its report")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use dataplane::counters::WorkerCounters;
use dataplane::crypto::CryptoEngine;
use dataplane::crypto::SoftEngine;
use dataplane::dpdk::lcore::{self, LcoreCounters, PollMode};
use dataplane::dpdk::{
    tsc_hz, CryptoDev, CryptoDevSetup, CryptodevCounters, CryptodevEngine, Eal, EthDev, Mbuf, MbufRing, Mempool,
};
use dataplane::esp::{EspProcessor, OutboundReq, OutboundVerdict};
use dataplane::ids::WorkerId;
use dataplane::pkt::{HeapPkt, PacketBuf};
use dataplane::punt::ControlRings;
use dataplane::sa::SaRtTable;
use dataplane::wire::ethernet;
use dataplane::wire::gre::{self, Protocol};
use dataplane::wire::IpProtocol;
use dataplane::worker::Worker;
use perf::scenario::{self, Scenario, ScenarioOptions, GRE_KEY};
use perf::traffic::{push_ethernet, push_ipv4, write_udp4, Bench, FrameSize, Path};

/// Frames the generator enqueues at once, per worker.
const CHUNK: usize = 1024;
/// Mbufs per worker: two chunks in flight plus the RX ring.
const MBUFS_PER_WORKER: u32 = 4 * CHUNK as u32;

/// The cryptodev vdev the `cryptodev` engine runs on.
const CRYPTODEV: &str = "crypto_aesni_gcm";
/// Most workers a run may ask for (and the vdev's queue pairs).
const MAX_WORKERS: usize = 8;

struct Args {
    seconds: f64,
    spokes: u32,
    workers: Vec<usize>,
    engines: Vec<String>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        seconds: 2.0,
        spokes: 1000,
        workers: vec![1, 2],
        engines: vec!["software".to_owned(), "cryptodev".to_owned()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => a.seconds = value()?.parse().context("--seconds")?,
            "--spokes" => a.spokes = value()?.parse().context("--spokes")?,
            "--workers" => {
                a.workers = value()?.split(',').map(str::parse).collect::<Result<_, _>>().context("--workers")?
            }
            "--engines" => a.engines = value()?.split(',').map(str::to_owned).collect(),
            _ => bail!(
                "unknown argument {arg:?}; usage: dpdk-bench [--seconds S] [--spokes N] [--workers 1,2] \
                 [--engines software,cryptodev]"
            ),
        }
    }
    ensure!(a.workers.iter().all(|&w| (1..=MAX_WORKERS).contains(&w)), "--workers: 1 to {MAX_WORKERS} each");
    ensure!(a.engines.iter().all(|e| e == "software" || e == "cryptodev"), "--engines: software and/or cryptodev");
    ensure!(a.seconds > 0.0, "--seconds must be positive");
    Ok(a)
}

/// Builds the frames a worker's generator sends: `n` of `path` and `size` from/to spoke `first`,
/// `first + step`, ...
struct Generator {
    scenario: Scenario,
    esp: EspProcessor,
    rt: SaRtTable,
    next_spoke: Vec<u32>,
    batch: Vec<HeapPkt>,
    /// Source spoke of each packet of `batch`.
    sources: Vec<u32>,
    reqs: Vec<Option<OutboundReq>>,
    verdicts: Vec<OutboundVerdict>,
}

impl Generator {
    fn fill(&mut self, worker: usize, workers: usize, path: Path, size: u16, out: &mut Vec<HeapPkt>) -> Result<()> {
        let spokes = self.scenario.options.spokes;
        let ip_len = usize::from(size) - ethernet::HEADER_LEN;
        self.batch.clear();
        self.sources.clear();
        self.reqs.clear();
        for _ in 0..CHUNK {
            let i = self.next_spoke[worker];
            let mut next = i + workers as u32;
            if next >= spokes {
                next = worker as u32 % spokes;
            }
            self.next_spoke[worker] = next;
            let mut pkt = HeapPkt::new();
            match path {
                Path::LanToTunnel => {
                    write_udp4(&mut pkt, scenario::LAN_HOST_IP, scenario::spoke_host(i), ip_len)?;
                    push_ethernet(&mut pkt, scenario::HUB_LAN_MAC, scenario::LAN_HOST_MAC)?;
                    out.push(pkt);
                }
                _ => {
                    write_udp4(&mut pkt, scenario::spoke_host(i), scenario::LAN_HOST_IP, ip_len)?;
                    let repr =
                        gre::Repr { protocol: Protocol::IPV4, checksum: false, key: Some(GRE_KEY), sequence: None };
                    let header = pkt.prepend(repr.buffer_len()).context("GRE room")?;
                    repr.emit(&mut gre::Packet::new_unchecked(header));
                    self.batch.push(pkt);
                    self.sources.push(i);
                    self.reqs.push(Some(OutboundReq { sa: scenario::sa_in(i), next_header: IpProtocol::GRE.0 }));
                }
            }
        }
        if path == Path::LanToTunnel {
            return Ok(());
        }
        self.verdicts.clear();
        self.verdicts.resize(self.batch.len(), Ok(()));
        let db = &self.scenario.spoke_sas;
        self.esp.encrypt(&mut SoftEngine, db, &mut self.rt, &mut self.batch, &self.reqs, &mut self.verdicts);
        ensure!(self.verdicts.iter().all(Result::is_ok), "spoke-side encryption failed");
        for (mut pkt, &spoke) in self.batch.drain(..).zip(&self.sources) {
            push_ipv4(&mut pkt, scenario::spoke_nbma(spoke), scenario::HUB_WAN_IP, IpProtocol::ESP)?;
            push_ethernet(&mut pkt, scenario::HUB_WAN_MAC, scenario::WAN_GW_MAC)?;
            out.push(pkt);
        }
        Ok(())
    }
}

struct Cell {
    per_core_mpps: f64,
    wall_mpps: f64,
}

/// One benchmark cell: workers, path, frame size, and the cryptodev to run ESP on (`None`: software).
struct CellSpec {
    run: usize,
    workers: usize,
    spokes: u32,
    path: Path,
    size: u16,
    secs: f64,
    cryptodev: Option<Arc<CryptoDev>>,
}

fn run_cell(eal: &Eal, spec: &CellSpec) -> Result<Cell> {
    let CellSpec { run, workers, spokes, path, size, secs, .. } = *spec;
    let pool = Mempool::new(&format!("bench{run}"), MBUFS_PER_WORKER * workers as u32, 256, None)?;
    let scenario = Scenario::build(ScenarioOptions::new(spokes))?;
    let mut gen = Generator {
        esp: EspProcessor::new(256),
        rt: SaRtTable::default(),
        next_spoke: (0..workers as u32).map(|w| w % spokes).collect(),
        batch: Vec::with_capacity(CHUNK),
        sources: Vec::with_capacity(CHUNK),
        reqs: Vec::with_capacity(CHUNK),
        verdicts: Vec::with_capacity(CHUNK),
        scenario,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let lcores = eal.worker_lcores();
    let in_port = match path {
        Path::LanToTunnel => 1,
        _ => 0,
    };
    let mut sides = Vec::new();
    for w in 0..workers {
        let mut rings = Vec::new();
        let mut devs = Vec::new();
        for p in 0..2 {
            let rx = Arc::new(MbufRing::new(&format!("b{run}w{w}p{p}rx"), 2 * CHUNK as u32, None)?);
            // A TX ring holds the whole pool: a generator slow to take frames back never makes a drop.
            let tx = Arc::new(MbufRing::new(&format!("b{run}w{w}p{p}tx"), pool.size(), None)?);
            devs.push(EthDev::from_rings(&format!("b{run}w{w}p{p}"), rx.clone(), tx.clone(), &pool)?);
            rings.push((rx, tx));
        }
        let ports = devs.iter().map(|d| d.worker_port(0).context("queue")).collect::<Result<Vec<_>>>()?;
        let reader = gen.scenario.publisher.reader();
        let lc = Arc::new(LcoreCounters::default());
        let (tx, rx) = mpsc::channel::<Arc<WorkerCounters>>();
        let (stop2, lc2) = (stop.clone(), lc.clone());
        let lcore = *lcores.get(w).context("not enough worker lcores")?;
        let crypto_counters = Arc::new(CryptodevCounters::default());
        let (dev, cc) = (spec.cryptodev.clone(), crypto_counters.clone());
        eal.launch(lcore, move || {
            let control = Arc::new(ControlRings::new(1024));
            let engine: Box<dyn CryptoEngine<Mbuf>> = match dev {
                Some(dev) => match CryptodevEngine::new(dev, w as u16, 32, cc) {
                    Ok(e) => Box::new(e),
                    Err(e) => {
                        eprintln!("worker {w}: {e}");
                        return 1;
                    }
                },
                None => Box::new(SoftEngine),
            };
            let mut worker = Worker::new(WorkerId(w as u16), ports, reader, engine, control, 32);
            if tx.send(worker.counters.clone()).is_err() {
                return 1;
            }
            lcore::run(&mut worker, &stop2, PollMode::Busy, &lc2);
            0
        })?;
        let counters = rx.recv()?;
        sides.push((rings, devs, counters, lc, crypto_counters));
    }

    let mut frames = Vec::with_capacity(CHUNK);
    let mut spare: Vec<Mbuf> = Vec::new();
    let mut burst: Vec<Mbuf> = Vec::with_capacity(CHUNK);
    let start = Instant::now();
    let budget = Duration::from_secs_f64(secs);
    while start.elapsed() < budget {
        for (w, (rings, ..)) in sides.iter().enumerate() {
            for (_, tx) in rings {
                while tx.dequeue(&mut spare, 256) > 0 {}
            }
            let rx = &rings[in_port].0;
            if rx.len() >= CHUNK {
                continue;
            }
            frames.clear();
            gen.fill(w, workers, path, size, &mut frames)?;
            for f in &frames {
                let mut m = match spare.pop() {
                    Some(mut m) => {
                        m.reset();
                        m
                    }
                    None => pool.alloc().context("pool empty")?,
                };
                m.append(f.len()).context("mbuf room")?.copy_from_slice(f.data());
                burst.push(m);
            }
            rx.enqueue(&mut burst);
            burst.clear();
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    eal.wait_all();
    let hz = tsc_hz() as f64;
    let (mut per_core, mut total) = (0.0, 0u64);
    for (_, _, counters, lc, crypto) in &sides {
        let rx = counters.rx_packets.get();
        let ok = match path {
            Path::LanToTunnel => counters.esp_encrypted.get(),
            _ => counters.esp_decrypted.get(),
        };
        let drops: u64 = counters.nonzero_drops().iter().map(|(_, n)| n).sum();
        ensure!(
            ok == rx && drops == 0,
            "worker: {rx} received, {ok} through ESP, drops {:?}",
            counters.nonzero_drops()
        );
        ensure!(counters.tx_packets.get() == rx, "worker sent {} of {rx}", counters.tx_packets.get());
        if spec.cryptodev.is_some() {
            let (dev, soft) = (crypto.device_ops.get(), crypto.software_ops.get());
            ensure!(dev == rx && soft == 0, "cryptodev ran {dev} of {rx} ESP ops, software {soft}");
        }
        per_core += rx as f64 / (lc.busy_cycles.get() as f64 / hz) / 1e6;
        total += rx;
    }
    drop(spare);
    drop(sides);
    ensure!(pool.in_use() == 0, "{} mbufs not returned", pool.in_use());
    Ok(Cell { per_core_mpps: per_core / workers as f64, wall_mpps: total as f64 / elapsed.as_secs_f64() / 1e6 })
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let max_workers = args.workers.iter().copied().max().unwrap_or(1);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Lcore i on CPU i modulo the CPUs there are: on a 2-CPU VM the second worker shares CPU 0 with the
    // generator, which the per-core figure (busy cycles only) does not count against it.
    let lcores: Vec<String> = (0..=max_workers).map(|i| format!("{i}@{}", i % cpus)).collect();
    let mut eal_args = vec![
        "--no-huge".to_owned(),
        "--no-pci".to_owned(),
        "-m".to_owned(),
        "1024".to_owned(),
        format!("--lcores={}", lcores.join(",")),
        "--log-level=error".to_owned(),
        format!("--file-prefix=dpdk-bench-{}", std::process::id()),
    ];
    if args.engines.iter().any(|e| e == "cryptodev") {
        eal_args.push(format!("--vdev={CRYPTODEV},max_nb_queue_pairs={MAX_WORKERS}"));
    }
    let eal = Eal::init(&eal_args)?;
    // Sessions: one per SA a worker uses (each spoke's inbound or outbound SA); freed after each cell.
    let setup = CryptoDevSetup { queue_pairs: max_workers as u16, descriptors: 512, sessions: 2 * args.spokes + 64 };
    let cryptodev = match args.engines.iter().any(|e| e == "cryptodev") {
        true => Some(Arc::new(CryptoDev::open(CRYPTODEV, setup).context("starting the cryptodev")?)),
        false => None,
    };
    println!(
        "# DPDK-level benchmark: net_ring ports, {} spokes, {} s per cell, {cpus} CPUs\n",
        args.spokes, args.seconds
    );
    println!("| engine | workers | path | frame | Mpps per worker core | Mpps wall (all workers) | in-memory Mpps (1 core, software) | DPDK / in-memory |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut run = 0;
    for path in [Path::LanToTunnel, Path::TunnelToLan] {
        for size in [64u16, 1400] {
            let mut bench = Bench::new(Scenario::build(ScenarioOptions::new(args.spokes))?);
            bench.prewarm()?;
            let m = bench.run_for(path, FrameSize::Fixed(size), Duration::from_secs_f64(args.seconds.min(2.0)))?;
            ensure!(m.wrong == 0, "in-memory run: {} packets went wrong", m.wrong);
            let mem = m.mpps();
            for engine in &args.engines {
                for &w in &args.workers {
                    run += 1;
                    let dev = if engine == "cryptodev" { cryptodev.clone() } else { None };
                    let spec = CellSpec {
                        run,
                        workers: w,
                        spokes: args.spokes,
                        path,
                        size,
                        secs: args.seconds,
                        cryptodev: dev,
                    };
                    let c = run_cell(&eal, &spec)?;
                    println!(
                        "| {engine} | {w} | {} | {size} B | {:.2} | {:.2} | {mem:.2} | {:.2} |",
                        path.name(),
                        c.per_core_mpps,
                        c.wall_mpps,
                        c.per_core_mpps / mem
                    );
                }
            }
        }
    }
    drop(cryptodev);
    eal.cleanup();
    Ok(())
}
