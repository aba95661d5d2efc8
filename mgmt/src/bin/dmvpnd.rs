//! `dmvpnd`: the DMVPN appliance, hub or spoke (a tunnel with NHSs is a spoke's).
//!
//! ```text
//! dmvpnd --config CONFIG.toml --profile PROFILE.toml [--socket PATH] [--file-prefix P]
//! ```
//!
//! Loads the configuration ([`mgmt::config::store::ConfigStore`]) and the hardware profile, maps the
//! interfaces to profile ports, starts the DPDK data plane ([`dataplane::dpdk::runtime`]), builds and
//! publishes the tables, and runs the control loop ([`mgmt::control::Control`]) on the main lcore:
//! punts in, injects out, both engines' timers. The status (the JSON `dmvpnctl` prints as `show dmvpn`
//! and `show ip nhrp`, with the data plane's counters) is written to each client of the unix socket
//! (default `/run/dmvpnd.sock`). SIGTERM or SIGINT stops it: the workers drain, every mbuf must be back
//! in its pool (else exit status 1).

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use dataplane::crypto;
use dataplane::dpdk::runtime::{self, Runtime};
use dataplane::ids::PortId;
use dataplane::pkt::PacketBuf;
use dataplane::punt::{Inject, PuntData};
use dataplane::tables::TablesPublisher;
use hw_profiles::Profile;
use mgmt::config::store::ConfigStore;
use mgmt::control::{Control, Output, PuntIn, Setup};
use mgmt::plan::Plan;

const USAGE: &str = "usage: dmvpnd --config CONFIG.toml --profile PROFILE.toml [--socket PATH] [--file-prefix P]";

struct Args {
    config: PathBuf,
    profile: PathBuf,
    socket: PathBuf,
    file_prefix: Option<String>,
}

fn parse_args() -> Result<Args> {
    let (mut config, mut profile, mut socket, mut file_prefix) = (None, None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--profile" => profile = Some(PathBuf::from(value()?)),
            "--socket" => socket = Some(PathBuf::from(value()?)),
            "--file-prefix" => file_prefix = Some(value()?),
            _ => bail!("unknown argument {arg:?}\n{USAGE}"),
        }
    }
    Ok(Args {
        config: config.context(USAGE)?,
        profile: profile.context(USAGE)?,
        socket: socket.unwrap_or_else(|| PathBuf::from("/run/dmvpnd.sock")),
        file_prefix,
    })
}

fn seed() -> [u8; 16] {
    let mut s = [0u8; 16];
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    s.copy_from_slice(&(t ^ (u128::from(std::process::id()) << 64)).to_le_bytes());
    s
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let store = ConfigStore::open(&args.config).with_context(|| format!("config {}", args.config.display()))?;
    let config = store.current().clone();
    let profile = Profile::load(&args.profile).with_context(|| format!("profile {}", args.profile.display()))?;
    let plan = Plan::new(&config).with_context(|| format!("config {}", args.config.display()))?;
    let (publisher, reader) = TablesPublisher::new();
    let prefix = args.file_prefix.clone().unwrap_or_else(|| format!("dmvpnd-{}", std::process::id()));
    let rt = Runtime::start(&profile, &plan.ports, &prefix, &reader, &[])?;
    let term = runtime::stop_signals()?;
    let macs: Vec<[u8; 6]> = (0..plan.ports.len()).map(|i| rt.mac(PortId(i as u16)).unwrap_or_default()).collect();
    let s = seed();
    let setup = Setup {
        workers: rt.workers().len() as u16,
        backend: crypto::default_backend(),
        iv_seed: s,
        nhrp_seed: u64::from_le_bytes(s[..8].try_into().unwrap_or_default()),
    };
    let result = run(&args, &config, &store, publisher, &macs, setup, &rt, &term);
    eprintln!("dmvpnd: stopping: draining the workers");
    rt.halt();
    let stop = rt.finish();
    let _ = std::fs::remove_file(&args.socket);
    result?;
    ensure!(stop.in_use == 0, "{} of {} mbufs were not returned to the pool", stop.in_use, stop.size);
    eprintln!("dmvpnd: stopped: all {} mbufs returned", stop.size);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run(
    args: &Args,
    config: &mgmt::config::Config,
    store: &ConfigStore,
    publisher: TablesPublisher,
    macs: &[[u8; 6]],
    setup: Setup,
    rt: &Runtime,
    term: &std::sync::atomic::AtomicBool,
) -> Result<()> {
    let start = Instant::now();
    let mut control = Control::new(config, publisher, macs, setup, start)?;
    control.set_observe(mgmt::events::Observe::starting_now(start));
    let _ = std::fs::remove_file(&args.socket);
    let listener = UnixListener::bind(&args.socket).with_context(|| format!("binding {}", args.socket.display()))?;
    listener.set_nonblocking(true).context("status socket")?;
    eprintln!(
        "dmvpnd: running: {} as {}, config revision {}, {}, status on {}",
        config.hostname,
        if config.tunnels.iter().any(|t| !t.nhrp.nhs.is_empty()) { "spoke" } else { "hub" },
        store.revision(),
        rt.describe(),
        args.socket.display()
    );
    while !term.load(Ordering::Relaxed) {
        let mut work = 0;
        for w in rt.workers() {
            while let Some(p) = w.rings.punts.pop() {
                work += 1;
                let now = Instant::now();
                let bytes = match &p.data {
                    PuntData::Packet(m) => m.data(),
                    PuntData::Header(s) => s.bytes(),
                };
                let punt =
                    PuntIn { kind: p.kind, port: p.port, tunnel: p.tunnel, sa: p.sa, src: p.src, dst: p.dst, bytes };
                control.handle_punt(now, punt);
            }
            while let Some(e) = w.rings.events.pop() {
                control.handle_sa_event(Instant::now(), e);
            }
        }
        let now = Instant::now();
        if control.poll_timeout().is_some_and(|t| t <= now) {
            control.handle_timeout(now);
        }
        while let Some(out) = control.poll_output() {
            work += 1;
            inject(rt, out);
        }
        if let Ok((mut conn, _)) = listener.accept() {
            let mut status = control.status(Instant::now());
            status["dataplane"] = rt.stats();
            status["config_revision"] = store.revision().into();
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = writeln!(conn, "{status}");
        }
        if work == 0 {
            let wait = control.poll_timeout().map_or(Duration::from_millis(2), |t| t.saturating_duration_since(now));
            std::thread::sleep(wait.min(Duration::from_millis(2)));
        }
    }
    Ok(())
}

/// Puts a packet on the first worker's inject ring (the worker hands an SA's packets to its owner).
fn inject(rt: &Runtime, out: Output) {
    let Some(w) = rt.workers().first() else { return };
    let item = match out {
        Output::Frame { port, bytes } => rt.pool().alloc_from(&bytes).map(|pkt| Inject::Frame { port, pkt }),
        Output::Tunnel { tunnel, nbma, sa, protocol, bytes } => {
            rt.pool().alloc_from(&bytes).map(|pkt| Inject::Tunnel { tunnel, nbma, sa, protocol, pkt })
        }
    };
    if let Some(item) = item {
        // A full inject ring drops the packet (the protocols retransmit).
        let _ = w.rings.injects.push(item);
    }
}
