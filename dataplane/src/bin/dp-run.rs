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
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use dataplane::crypto;
use dataplane::dpdk::runtime::{self, Runtime, WorkerView};
use dataplane::static_config::StaticConfig;
use hw_profiles::Profile;

const USAGE: &str =
    "usage: dp-run --profile PROFILE.toml --config CFG.json [--stats FILE.json] [--stats-every SECS] [--file-prefix P]";

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

fn main() -> Result<()> {
    let args = parse_args()?;
    let profile = Profile::load(&args.profile).with_context(|| format!("profile {}", args.profile.display()))?;
    let text = std::fs::read_to_string(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    let config = StaticConfig::from_json(&text).with_context(|| format!("in {}", args.config.display()))?;

    // The config's port ids index the workers' port arrays; each must be a profile port of that name.
    let mut port_names = Vec::new();
    for id in 0..config.ports.len() {
        let p = config.ports.iter().find(|p| usize::from(p.id) == id).with_context(|| {
            format!("{}: port ids must be 0..{}, and there is no port {id}", args.config.display(), config.ports.len())
        })?;
        port_names.push(p.name.clone());
    }
    let sas = config
        .sa_db(crypto::default_backend(), rand_seed())
        .with_context(|| format!("in {}", args.config.display()))?;
    let (mut publisher, reader) = config.publish(sas).with_context(|| format!("in {}", args.config.display()))?;
    let prefix = args.file_prefix.clone().unwrap_or_else(|| format!("dmvpn-{}-{}", profile.name, std::process::id()));
    let seq_starts: Vec<_> = config.seq_starts().collect();
    let rt = Runtime::start(&profile, &port_names, &prefix, &reader, &seq_starts)?;
    rt.publish_offloads(&mut publisher)?;
    let term = runtime::stop_signals()?;
    let usr1 = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, usr1.clone()).context("installing SIGUSR1")?;
    log(&format!("running: {}", rt.describe()));

    let mut punts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut sa_events = 0u64;
    let mut last_stats = Instant::now();
    while !term.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(5));
        take_punts(rt.workers(), &mut punts, &mut sa_events);
        let due = args.stats_every.is_some_and(|every| last_stats.elapsed() >= every);
        if usr1.swap(false, Ordering::Relaxed) || due {
            last_stats = Instant::now();
            report(&args, &stats(&rt, &punts, sa_events))?;
        }
    }

    log("stopping: draining the workers");
    rt.halt();
    take_punts(rt.workers(), &mut punts, &mut sa_events);
    let mut last = stats(&rt, &punts, sa_events);
    let stop = rt.finish();
    last["mempool"] = json!({"size": stop.size, "in_use_after_stop": stop.in_use, "all_returned": stop.in_use == 0});
    report(&args, &last)?;
    ensure!(stop.in_use == 0, "{} of {} mbufs were not returned to the pool", stop.in_use, stop.size);
    log(&format!("stopped: all {} mbufs returned", stop.size));
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

fn stats(rt: &Runtime, punts: &BTreeMap<&'static str, u64>, sa_events: u64) -> Value {
    let mut v = rt.stats();
    v["punts"] = json!(punts);
    v["sa_events"] = json!(sa_events);
    v
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
