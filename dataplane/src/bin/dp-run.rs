//! `dp-run`: the hub's data plane on DPDK, from a hardware profile and a static config.
//!
//! ```text
//! dp-run --profile PROFILE.toml --config CFG.json [--stats FILE.json] [--stats-every SECS] [--file-prefix P]
//! ```
//!
//! Starts the EAL from the profile, opens its ports (RSS over each port's RX queues, one TX queue per
//! worker), builds the tables from the config (its ports are matched to the profile's by name) and runs
//! one pinned worker per worker lcore: worker `i` polls RX queue `i` of each port that has it. The main
//! lcore takes the punts and SA events off the workers' rings (there is no control plane here: punts
//! are counted by kind and freed) and reports the counters: per worker (packets, bytes, drops by
//! reason, busy and idle cycles, ring occupancy), per port and per queue, read while the workers run.
//!
//! SIGUSR1 writes the counters (to `--stats` as JSON, and a summary to stderr); SIGTERM or SIGINT
//! stops the workers, drains their queues, stops the ports, checks that every mbuf is back in its pool,
//! writes the counters a last time and exits (status 1 if an mbuf is missing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use dataplane::counters::WorkerCounters;
use dataplane::crypto;
use dataplane::dpdk::lcore::{self, LcoreCounters, PollMode};
use dataplane::dpdk::{CryptoSetup, Eal, EthDev, Mbuf, Mempool, PortSetup};
use dataplane::drop::DropReason;
use dataplane::ids::WorkerId;
use dataplane::pipeline::HandoffRings;
use dataplane::punt::ControlRings;
use dataplane::static_config::StaticConfig;
use dataplane::worker::Worker;
use hw_profiles::{Host, Profile};

const USAGE: &str =
    "usage: dp-run --profile PROFILE.toml --config CFG.json [--stats FILE.json] [--stats-every SECS] [--file-prefix P]";

/// Entries in each worker's punt, inject and event rings.
const RING_SIZE: usize = 4096;

struct Args {
    profile: PathBuf,
    config: PathBuf,
    stats: Option<PathBuf>,
    stats_every: Option<Duration>,
    file_prefix: Option<String>,
}

fn parse_args() -> Result<Args> {
    let (mut profile, mut config, mut stats, mut stats_every, mut file_prefix) = (None, None, None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--profile" => profile = Some(PathBuf::from(value()?)),
            "--config" => config = Some(PathBuf::from(value()?)),
            "--stats" => stats = Some(PathBuf::from(value()?)),
            "--stats-every" => {
                let secs: f64 = value()?.parse().context("--stats-every: not a number")?;
                ensure!(secs > 0.0 && secs.is_finite(), "--stats-every: must be positive");
                stats_every = Some(Duration::from_secs_f64(secs));
            }
            "--file-prefix" => file_prefix = Some(value()?),
            _ => bail!("unknown argument {arg:?}\n{USAGE}"),
        }
    }
    Ok(Args { profile: profile.context(USAGE)?, config: config.context(USAGE)?, stats, stats_every, file_prefix })
}

/// What management holds of one worker: its counters and rings, all readable while it runs.
struct WorkerView {
    lcore: u32,
    counters: Arc<WorkerCounters>,
    lcore_counters: Arc<LcoreCounters>,
    rings: Arc<ControlRings<Mbuf>>,
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let profile = Profile::load(&args.profile).with_context(|| format!("profile {}", args.profile.display()))?;
    let host = Host::current().context("reading this machine's cores and PCI devices from /sys")?;
    profile
        .check_host(&host)
        .with_context(|| format!("profile {} does not fit this machine", args.profile.display()))?;
    let text = std::fs::read_to_string(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    let config = StaticConfig::from_json(&text).with_context(|| format!("in {}", args.config.display()))?;

    // The config's port ids index the workers' port arrays; each must be a profile port of that name.
    let mut port_order = Vec::new();
    for id in 0..config.ports.len() {
        let p = config.ports.iter().find(|p| usize::from(p.id) == id).with_context(|| {
            format!("{}: port ids must be 0..{}, and there is no port {id}", args.config.display(), config.ports.len())
        })?;
        let names: Vec<&str> = profile.ports.iter().map(|p| p.name.as_str()).collect();
        let (_, pp) = profile.port(&p.name).with_context(|| {
            format!(
                "config port {id} {:?} is not in profile {} (its ports: {})",
                p.name,
                profile.name,
                names.join(", ")
            )
        })?;
        port_order.push(pp.clone());
    }
    let workers = profile.workers.lcores.len();

    let prefix = args.file_prefix.clone().unwrap_or_else(|| format!("dmvpn-{}-{}", profile.name, std::process::id()));
    let eal = Eal::init(&profile.eal_args(&prefix)).context("starting DPDK")?;
    let socket = profile.eal.hugepages.then(|| port_order.first().map_or(0, |p| p.socket));
    let pool = Mempool::new("dp_mbufs", profile.mempool.mbufs, profile.mempool.cache, socket)
        .context("creating the mbuf pool")?;
    let crypto_setup = CryptoSetup::from_profile(&profile.crypto, workers, profile.workers.burst)
        .context("starting the profile's crypto devices")?;

    let mut devs = Vec::new();
    for p in &port_order {
        let setup =
            PortSetup { rx_queues: p.rx_queues, tx_queues: workers as u16, rx_desc: p.rx_desc, tx_desc: p.tx_desc };
        let dev = EthDev::open(p.device.port_name(), setup, &pool)
            .with_context(|| format!("opening port {} ({})", p.name, p.device.port_name()))?;
        devs.push(dev);
    }

    let sas = config
        .sa_db(crypto::default_backend(), rand_seed())
        .with_context(|| format!("in {}", args.config.display()))?;
    let (mut publisher, _reader) = config.publish(sas).with_context(|| format!("in {}", args.config.display()))?;
    dataplane::dpdk::publish_offloads(&mut publisher, &devs).context("publishing the ports' offloads")?;
    let stop = Arc::new(AtomicBool::new(false));
    let mode = match profile.workers.poll {
        hw_profiles::PollMode::Busy => PollMode::Busy,
        hw_profiles::PollMode::Adaptive { idle_polls, max_sleep_us } => {
            PollMode::Adaptive { idle_polls, max_sleep: Duration::from_micros(u64::from(max_sleep_us)) }
        }
    };
    // Each SA's packets go to its owner worker (the SA's `owner`), the one writer of its state.
    let handoff = Arc::new(HandoffRings::new(workers, RING_SIZE));
    let mut views = Vec::new();
    for (i, &lcore_id) in profile.workers.lcores.iter().enumerate() {
        let ports = devs.iter().map(|d| d.worker_port(i as u16)).collect::<Option<Vec<_>>>().context("queue pair")?;
        let rings = Arc::new(ControlRings::new(RING_SIZE));
        let lcore_counters = Arc::new(LcoreCounters::default());
        let (tx, rx) = mpsc::channel();
        let (reader, stop, lc, r) = (publisher.reader(), stop.clone(), lcore_counters.clone(), rings.clone());
        let handoff = handoff.clone();
        let seq_starts: Vec<_> = config.seq_starts().collect();
        let burst = usize::from(profile.workers.burst);
        let crypto_setup = crypto_setup.clone();
        // The worker is built on its own lcore (its crypto engine stays there) and hands its counters back.
        eal.launch(lcore_id, move || {
            let engine = match crypto_setup.engine(i, burst) {
                Ok(engine) => engine,
                Err(e) => {
                    log(&format!("worker {i}: no crypto engine: {e}"));
                    return 1;
                }
            };
            let mut w = Worker::new(WorkerId(i as u16), ports, reader, engine, r, burst).with_handoff(handoff);
            for (sa, seq) in seq_starts {
                w.set_outbound_seq(sa, seq);
            }
            if tx.send(w.counters.clone()).is_err() {
                return 1;
            }
            lcore::run(&mut w, &stop, mode, &lc);
            0
        })?;
        let counters = rx.recv().context("a worker died before starting")?;
        views.push(WorkerView { lcore: lcore_id, counters, lcore_counters, rings });
    }
    let term = Arc::new(AtomicBool::new(false));
    let usr1 = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, term.clone()).context("installing the SIGTERM handler")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, usr1.clone()).context("installing SIGUSR1")?;
    log(&format!(
        "running: profile {}, {} ports, {workers} workers on lcores {:?}, {} mbufs, crypto {}",
        profile.name,
        devs.len(),
        profile.workers.lcores,
        pool.size(),
        crypto_setup.describe()
    ));

    let mut punts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut sa_events = 0u64;
    let mut last_stats = Instant::now();
    while !term.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(5));
        take_punts(&views, &mut punts, &mut sa_events);
        let due = args.stats_every.is_some_and(|every| last_stats.elapsed() >= every);
        if usr1.swap(false, Ordering::Relaxed) || due {
            last_stats = Instant::now();
            report(&args, &stats(&views, &handoff, &devs, &punts, sa_events, &pool))?;
        }
    }

    log("stopping: draining the workers");
    stop.store(true, Ordering::Relaxed);
    eal.wait_all();
    take_punts(&views, &mut punts, &mut sa_events);
    while views.iter().any(|v| v.rings.injects.pop().is_some()) {}
    let last = stats(&views, &handoff, &devs, &punts, sa_events, &pool);
    let size = pool.size();
    // Packets still parked between workers go back to the pool with the rings.
    drop(handoff);
    drop(devs);
    let in_use = pool.in_use();
    let mut last = last;
    last["mempool"] = json!({"size": size, "in_use_after_stop": in_use, "all_returned": in_use == 0});
    last["crypto"] = json!({"engine": crypto_setup.describe(), "workers": crypto_setup.worker_counts().iter()
        .map(|(dev, soft, sessions)| json!({"device_ops": dev, "software_ops": soft, "sessions": sessions}))
        .collect::<Vec<_>>()});
    report(&args, &last)?;
    drop(views);
    drop(pool);
    drop(crypto_setup);
    eal.cleanup();
    ensure!(in_use == 0, "{in_use} of {size} mbufs were not returned to the pool");
    log(&format!("stopped: all {size} mbufs returned"));
    Ok(())
}

/// Seed of the CBC IV keys (each SA derives its own from it; a fresh one per start).
fn rand_seed() -> [u8; 16] {
    let mut seed = [0u8; 16];
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    seed.copy_from_slice(&(t ^ (u128::from(std::process::id()) << 64)).to_le_bytes());
    seed
}

fn take_punts(views: &[WorkerView], punts: &mut BTreeMap<&'static str, u64>, sa_events: &mut u64) {
    for v in views {
        while let Some(p) = v.rings.punts.pop() {
            *punts.entry(p.kind.name()).or_default() += 1;
        }
        while v.rings.events.pop().is_some() {
            *sa_events += 1;
        }
    }
}

fn stats(
    views: &[WorkerView],
    handoff: &HandoffRings<Mbuf>,
    devs: &[EthDev],
    punts: &BTreeMap<&'static str, u64>,
    sa_events: u64,
    pool: &Mempool,
) -> Value {
    let workers: Vec<Value> = views
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
                "handed_off": c.handed_off.get(), "handoff_ring": handoff.pending(WorkerId(i as u16)),
                "drops": drops,
                "polls": l.polls.get(), "busy_polls": l.busy_polls.get(),
                "busy_cycles": l.busy_cycles.get(), "idle_cycles": l.idle_cycles.get(), "sleeps": l.sleeps.get(),
                "punt_ring": v.rings.punts.len(), "inject_ring": v.rings.injects.len(),
                "event_ring": v.rings.events.len(),
            })
        })
        .collect();
    let ports: Vec<Value> = devs
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
            let sum =
                |f: fn(&dataplane::dpdk::QueueCounters) -> u64| d.queue_counters().iter().map(|c| f(c)).sum::<u64>();
            let s = d.stats();
            json!({
                "name": d.name(), "port_id": d.id(),
                "offloads": {
                    "rx_ipv4_csum": d.offloads().rx_ipv4_csum, "tx_ipv4_csum": d.offloads().tx_ipv4_csum,
                    "rx_vlan_strip": d.offloads().rx_vlan_strip, "tx_vlan_insert": d.offloads().tx_vlan_insert,
                },
                "rx_packets": sum(|c| c.rx_packets.get()), "rx_bytes": sum(|c| c.rx_bytes.get()),
                "tx_packets": sum(|c| c.tx_packets.get()), "tx_bytes": sum(|c| c.tx_bytes.get()),
                "tx_refused": sum(|c| c.tx_refused.get()),
                "device": {"ipackets": s.ipackets, "opackets": s.opackets, "imissed": s.imissed,
                           "ierrors": s.ierrors, "oerrors": s.oerrors, "rx_nombuf": s.rx_nombuf},
                "queues": queues,
            })
        })
        .collect();
    json!({
        "workers": workers, "ports": ports, "punts": punts, "sa_events": sa_events,
        "mempool": {"size": pool.size(), "in_use": pool.in_use()},
    })
}

fn report(args: &Args, stats: &Value) -> Result<()> {
    let mut line = String::from("counters:");
    for w in stats["workers"].as_array().into_iter().flatten() {
        line += &format!(
            " worker {} rx {} tx {} punted {} busy/idle cycles {}/{};",
            w["worker"], w["rx_packets"], w["tx_packets"], w["punted"], w["busy_cycles"], w["idle_cycles"]
        );
    }
    for p in stats["ports"].as_array().into_iter().flatten() {
        line += &format!(
            " port {} rx {} tx {} imissed {};",
            p["name"], p["rx_packets"], p["tx_packets"], p["device"]["imissed"]
        );
    }
    log(&line);
    if let Some(path) = &args.stats {
        write_atomically(path, &serde_json::to_string_pretty(stats)?)?;
    }
    Ok(())
}

fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

fn log(msg: &str) {
    eprintln!("dp-run: {msg}");
}
