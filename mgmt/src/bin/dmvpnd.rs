//! `dmvpnd`: the DMVPN appliance, hub or spoke (a tunnel with NHSs is a spoke's).
//!
//! ```text
//! dmvpnd --config CONFIG.toml --profile PROFILE.toml [--socket PATH] [--file-prefix P]
//!        [--api ADDR:PORT --tokens TOKENS.toml [--tls-cert CERT.pem --tls-key KEY.pem]] [--log json|text]
//! ```
//!
//! Loads the configuration ([`mgmt::config::store::ConfigStore`]) and the hardware profile, maps the
//! interfaces to profile ports, starts the DPDK data plane ([`dataplane::dpdk::runtime`]), builds and
//! publishes the tables, and runs the control loop ([`mgmt::control::Control`]) on the main lcore:
//! punts in, injects out, both engines' timers. The status (the JSON `dmvpnctl` prints as `show dmvpn`
//! and `show ip nhrp`, with the data plane's counters) is written to each client of the unix socket
//! (default `/run/dmvpnd.sock`). SIGTERM or SIGINT stops it: the workers drain, every mbuf must be back
//! in its pool (else exit status 1).
//!
//! With `--api`, the REST API ([`mgmt::api`]) serves HTTPS on its own threads (the certificate and key
//! given, or a self-signed one made at start), with the bearer tokens of `--tokens`. Its threads talk to
//! the control loop only through the bounded queue of [`mgmt::api::daemon`], which the loop polls once
//! per iteration and never waits on. SIGHUP re-reads the configuration file and applies it through the
//! same path as `PUT /api/v1/config` (what can change live changes; a change that needs a restart is
//! refused, and logged, with the field that needs it).
//!
//! The log is standard error. `--log json` (the default) writes each event and debug line as one JSON
//! object with all its fields ([`mgmt::events`]); `--log text` writes them through a `tracing` subscriber
//! as text lines with a UTC timestamp, the level, the target (`dmvpnd::event`, `dmvpnd::debug`) and
//! `key=value` fields, filtered by `RUST_LOG` (default `info,dmvpnd::debug=debug`).

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use dataplane::crypto;
use dataplane::dpdk::runtime::{self, Runtime};
use dataplane::ids::PortId;
use dataplane::pkt::PacketBuf;
use dataplane::punt::{Inject, PuntData};
use dataplane::tables::TablesPublisher;
use hw_profiles::Profile;
use mgmt::api::daemon::{self, Answer, Ask, Request};
use mgmt::api::{Api, Tls};
use mgmt::capture::{CaptureControl, Names};
use mgmt::config::store::{self, ConfigStore};
use mgmt::control::{Control, InjectDrop, Output, PuntIn, Setup};
use mgmt::events::Observe;
use mgmt::plan::Plan;

const USAGE: &str = "usage: dmvpnd --config CONFIG.toml --profile PROFILE.toml [--socket PATH] [--file-prefix P]
              [--api ADDR:PORT --tokens TOKENS.toml [--tls-cert CERT.pem --tls-key KEY.pem]] [--log json|text]";

/// API requests the control loop answers per iteration (the rest wait for the next one).
const REQUESTS_PER_ITERATION: usize = 8;

struct Args {
    config: PathBuf,
    profile: PathBuf,
    socket: PathBuf,
    file_prefix: Option<String>,
    api: Option<SocketAddr>,
    tokens: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    text_log: bool,
}

fn parse_args() -> Result<Args> {
    let (mut config, mut profile, mut socket, mut file_prefix) = (None, None, None, None);
    let (mut api, mut tokens, mut tls_cert, mut tls_key) = (None, None, None, None);
    let mut text_log = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--profile" => profile = Some(PathBuf::from(value()?)),
            "--socket" => socket = Some(PathBuf::from(value()?)),
            "--file-prefix" => file_prefix = Some(value()?),
            "--api" => {
                let v = value()?;
                api = Some(v.parse::<SocketAddr>().with_context(|| format!("--api {v:?}: not ADDR:PORT"))?);
            }
            "--tokens" => tokens = Some(PathBuf::from(value()?)),
            "--tls-cert" => tls_cert = Some(PathBuf::from(value()?)),
            "--tls-key" => tls_key = Some(PathBuf::from(value()?)),
            "--log" => {
                text_log = match value()?.as_str() {
                    "json" => false,
                    "text" => true,
                    other => bail!("--log {other:?}: json or text\n{USAGE}"),
                }
            }
            _ => bail!("unknown argument {arg:?}\n{USAGE}"),
        }
    }
    ensure!(api.is_none() || tokens.is_some(), "--api needs --tokens\n{USAGE}");
    ensure!(tls_cert.is_some() == tls_key.is_some(), "--tls-cert and --tls-key go together\n{USAGE}");
    Ok(Args {
        config: config.context(USAGE)?,
        profile: profile.context(USAGE)?,
        socket: socket.unwrap_or_else(|| PathBuf::from("/run/dmvpnd.sock")),
        file_prefix,
        api,
        tokens,
        tls_cert,
        tls_key,
        text_log,
    })
}

/// `--log text`: events and debug lines through a `tracing` text subscriber on standard error.
fn text_log() -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,dmvpnd::debug=debug"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init()
        .map_err(|e| anyhow::anyhow!("--log text: {e}"))
}

/// Starts the REST API on its own threads; returns once it listens (or failed to).
fn start_api(args: &Args, api: &Arc<Api>, hostname: &str) -> Result<()> {
    let Some(listen) = args.api else { return Ok(()) };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Tls::Pem {
            cert: std::fs::read(c).with_context(|| format!("--tls-cert {}", c.display()))?,
            key: std::fs::read(k).with_context(|| format!("--tls-key {}", k.display()))?,
        },
        _ => Tls::SelfSigned(vec![hostname.to_string(), listen.ip().to_string()]),
    };
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let api = api.clone();
    let server = std::thread::Builder::new()
        .name("api".into())
        .spawn(move || -> std::io::Result<()> {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            rt.block_on(mgmt::api::serve(api, listen, tls, Some(bound_tx)))
        })
        .context("starting the API thread")?;
    match bound_rx.blocking_recv() {
        Ok(addr) => {
            eprintln!("dmvpnd: api on https://{addr}");
            Ok(())
        }
        Err(_) => match server.join() {
            Ok(Err(e)) => Err(e).with_context(|| format!("--api {listen}")),
            _ => bail!("--api {listen}: the API thread stopped"),
        },
    }
}

/// SIGHUP re-reads the configuration file, on its own thread (it waits for the control loop).
fn reload_on_hup(api: Arc<Api>) -> Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP]).context("SIGHUP")?;
    std::thread::Builder::new()
        .name("sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                match api.reload() {
                    Ok(rev) => eprintln!("dmvpnd: SIGHUP: configuration reloaded, revision {rev}"),
                    Err(e) => eprintln!("dmvpnd: SIGHUP: configuration not reloaded: {e}"),
                }
            }
        })
        .context("starting the SIGHUP thread")?;
    Ok(())
}

fn seed() -> [u8; 16] {
    let mut s = [0u8; 16];
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    s.copy_from_slice(&(t ^ (u128::from(std::process::id()) << 64)).to_le_bytes());
    s
}

fn main() -> Result<()> {
    let args = parse_args()?;
    if args.text_log {
        text_log()?;
    }
    let store = ConfigStore::open(&args.config).with_context(|| format!("config {}", args.config.display()))?;
    let config = store.current().clone();
    let revision = store.revision().to_string();
    let tokens = match &args.tokens {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("--tokens {}", p.display()))?;
            mgmt::api::load_tokens(&text).map_err(|e| anyhow::anyhow!("--tokens {}: {e}", p.display()))?
        }
        None => Vec::new(),
    };
    let start = Instant::now();
    let observe = Observe::starting_now(start);
    let (backend, requests) = daemon::channel();
    let backend = backend.with_observe(observe.clone());
    let api = Api::new(tokens, store, Arc::new(backend.clone()));
    let profile = Profile::load(&args.profile).with_context(|| format!("profile {}", args.profile.display()))?;
    let plan = Plan::new(&config).with_context(|| format!("config {}", args.config.display()))?;
    let (publisher, reader) = TablesPublisher::new();
    let prefix = args.file_prefix.clone().unwrap_or_else(|| format!("dmvpnd-{}", std::process::id()));
    let rt = Runtime::start(&profile, &plan.ports, &prefix, &reader, &[])?;
    backend.set_capture(CaptureControl::new(rt.capture(), Runtime::clock_ns, Names::of(&plan)));
    let term = runtime::stop_signals()?;
    let macs: Vec<[u8; 6]> = (0..plan.ports.len()).map(|i| rt.mac(PortId(i as u16)).unwrap_or_default()).collect();
    let s = seed();
    let setup = Setup {
        workers: rt.workers().len() as u16,
        backend: crypto::default_backend(),
        iv_seed: s,
        nhrp_seed: u64::from_le_bytes(s[..8].try_into().unwrap_or_default()),
    };
    let result = start_api(&args, &api, &config.hostname)
        .and_then(|()| reload_on_hup(api.clone()))
        .and_then(|()| run(&args, &config, revision, &requests, publisher, &macs, setup, &rt, &term, observe));
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
    mut revision: String,
    requests: &Receiver<Request>,
    publisher: TablesPublisher,
    macs: &[[u8; 6]],
    setup: Setup,
    rt: &Runtime,
    term: &std::sync::atomic::AtomicBool,
    observe: Arc<Observe>,
) -> Result<()> {
    let mut control = Control::new(config, publisher, macs, setup, Instant::now())?;
    control.set_observe(observe);
    let _ = std::fs::remove_file(&args.socket);
    let listener = UnixListener::bind(&args.socket).with_context(|| format!("binding {}", args.socket.display()))?;
    listener.set_nonblocking(true).context("status socket")?;
    eprintln!(
        "dmvpnd: running: {} as {}, config revision {}, {}, status on {}",
        config.hostname,
        if config.tunnels.iter().any(|t| !t.nhrp.nhs.is_empty()) { "spoke" } else { "hub" },
        revision,
        rt.describe(),
        args.socket.display()
    );
    let mut esp_traced = Instant::now();
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
        if now.duration_since(esp_traced) >= Duration::from_secs(1) {
            esp_traced = now;
            control.trace_esp_drops(now);
        }
        let status = |control: &Control, revision: &str| {
            let mut status = control.status(Instant::now());
            status["dataplane"] = rt.stats();
            status["config_revision"] = revision.into();
            status
        };
        for request in requests.try_iter().take(REQUESTS_PER_ITERATION) {
            work += 1;
            let now = Instant::now();
            let answer = match &request.ask {
                Ask::Status => Answer::Status(status(&control, &revision)),
                Ask::Apply(config) => Answer::Done(control.apply_config(now, config).map(|()| {
                    revision = store::revision(config);
                    String::new()
                })),
                Ask::Act(action) => Answer::Done(control.act(now, action)),
            };
            request.answer(answer);
        }
        while let Some(out) = control.poll_output() {
            work += 1;
            if let Err(why) = inject(rt, out) {
                control.inject_dropped(why);
            }
        }
        if let Ok((mut conn, _)) = listener.accept() {
            let status = status(&control, &revision);
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
fn inject(rt: &Runtime, out: Output) -> Result<(), InjectDrop> {
    let Some(w) = rt.workers().first() else { return Ok(()) };
    let item = match out {
        Output::Frame { port, bytes } => rt.pool().alloc_from(&bytes).map(|pkt| Inject::Frame { port, pkt }),
        Output::Tunnel { tunnel, nbma, sa, protocol, bytes } => {
            rt.pool().alloc_from(&bytes).map(|pkt| Inject::Tunnel { tunnel, nbma, sa, protocol, pkt })
        }
    };
    let item = item.ok_or(InjectDrop::NoBuffer)?;
    w.rings.injects.push(item).map_err(|_| InjectDrop::RingFull)
}
