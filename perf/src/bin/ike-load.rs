//! `ike-load`: the IKE benchmark's load generator. Our engine (`ike::engine`) as initiator emulates
//! `--count` distinct peers (identity `spoke-N`, one engine each, all on one UDP socket pair) that each
//! set up one IKE SA with its CHILD SA (IKE_SA_INIT + IKE_AUTH, RFC 7296 §1.2) against one responder,
//! at most `--concurrency` at a time. When all are up, failed or timed out it prints one JSON line:
//! `{"up": N, "failed": F, "failures": {why: count}, "wall_s": S}`.
//!
//! ```text
//! ike-load --local 10.0.0.2 --target 10.0.0.1 --psk SECRET --count 2000 [--concurrency 32]
//!          [--ike aes128gcm16-prfsha256-x25519] [--esp aes128gcm16-noesn] [--remote-id hub]
//!          [--timeout S]
//! ```
//!
//! A datagram is handed to the engine whose SPI is the message's initiator SPI (ours, §3.1). An
//! emulated peer is dropped once its SA pair is installed (the responder keeps its SAs); the
//! responder's cost per setup is what `perf/ike-bench.py` measures from the responder's CPU time.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use ike::config::{id_fqdn, Config, Keyring, PeerMatch};
use ike::crypto::OsRandom;
use ike::engine::{Engine, Event};
use ike::message::Id;
use perf::ike_cli::{esp_proposal, ike_proposal, send, sockets};
use serde_json::json;

struct Args {
    local: IpAddr,
    target: IpAddr,
    psk: String,
    count: usize,
    concurrency: usize,
    ike: Option<String>,
    esp: Option<String>,
    remote_id: Option<Id>,
    timeout: Duration,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let (mut local, mut target, mut psk, mut ike, mut esp, mut remote_id) = (None, None, None, None, None, None);
    let (mut count, mut concurrency, mut timeout) = (1000, 32, Duration::from_secs(20));
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--local" => local = Some(val()?.parse().context("--local")?),
            "--target" => target = Some(val()?.parse().context("--target")?),
            "--psk" => psk = Some(val()?),
            "--count" => count = val()?.parse().context("--count")?,
            "--concurrency" => concurrency = val()?.parse().context("--concurrency")?,
            "--ike" => ike = Some(val()?),
            "--esp" => esp = Some(val()?),
            "--remote-id" => remote_id = Some(id_fqdn(&val()?)),
            "--timeout" => timeout = Duration::from_secs(val()?.parse().context("--timeout")?),
            _ => bail!("unknown argument {a:?}"),
        }
    }
    if concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    Ok(Args {
        local: local.ok_or_else(|| anyhow!("--local is required"))?,
        target: target.ok_or_else(|| anyhow!("--target is required"))?,
        psk: psk.ok_or_else(|| anyhow!("--psk is required"))?,
        count,
        concurrency,
        ike,
        esp,
        remote_id,
        timeout,
    })
}

/// The configuration of emulated peer `n`: identity `spoke-n`, no DPD (it lives only for its setup).
fn peer_config(args: &Args, n: usize) -> Result<Config> {
    let mut c = Config::new(id_fqdn(&format!("spoke-{n}")));
    c.keyring = Keyring::default().with(PeerMatch::Any, args.psk.as_bytes());
    if let Some(ike) = &args.ike {
        c.ike_proposals = ike.split(',').map(ike_proposal).collect::<Result<_>>()?;
    }
    if let Some(esp) = &args.esp {
        c.esp_proposals = esp.split(',').map(esp_proposal).collect::<Result<_>>()?;
    }
    c.dpd = None;
    Ok(c)
}

/// One emulated peer in flight.
struct Peer {
    engine: Engine,
    started: Instant,
    up: bool,
    installed: bool,
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let local = SocketAddr::new(args.local, 500);
    let remote = SocketAddr::new(args.target, 500);
    let (s500, s4500, rx) = sockets(args.local)?;
    let mut peers: HashMap<u64, Peer> = HashMap::new();
    let mut reasons: HashMap<String, usize> = HashMap::new();
    let (mut next, mut up, mut failed) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    while up + failed < args.count {
        let now = Instant::now();
        while peers.len() < args.concurrency && next < args.count {
            let mut engine = Engine::new(peer_config(&args, next)?, Box::new(OsRandom));
            let sa = engine.initiate(now, local, remote, args.remote_id.clone())?;
            peers.insert(sa.0, Peer { engine, started: now, up: false, installed: false });
            next += 1;
        }
        let mut finished = Vec::new();
        for (spi, p) in &mut peers {
            if p.engine.poll_timeout().is_some_and(|t| t <= now) {
                p.engine.handle_timeout(now);
            }
            while let Some(t) = p.engine.poll_transmit() {
                let sent = send(&s500, &s4500, &t);
                sent.with_context(|| format!("sending to {}", t.remote))?;
            }
            let mut gone = false;
            while let Some(e) = p.engine.poll_event() {
                match e {
                    Event::IkeSaUp { .. } => p.up = true,
                    Event::InstallSaPair(_) => p.installed = true,
                    Event::Failed { failure, .. } => {
                        *reasons.entry(format!("{failure:?}")).or_insert(0) += 1;
                        gone = true;
                    }
                    Event::IkeSaDown { reason, .. } => {
                        *reasons.entry(format!("{reason:?}")).or_insert(0) += 1;
                        gone = true;
                    }
                    _ => {}
                }
            }
            if p.up && p.installed {
                finished.push((*spi, true));
            } else if gone || now - p.started > args.timeout {
                if !gone {
                    *reasons.entry("no answer".into()).or_insert(0) += 1;
                }
                finished.push((*spi, false));
            }
        }
        for (spi, ok) in finished {
            peers.remove(&spi);
            if ok {
                up += 1;
            } else {
                failed += 1;
            }
        }
        if up + failed >= args.count {
            break;
        }
        match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(first) => {
                let now = Instant::now();
                for (to, from, data) in std::iter::once(first).chain(rx.try_iter()) {
                    let spi_i = data.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes);
                    if let Some(p) = spi_i.and_then(|s| peers.get_mut(&s)) {
                        p.engine.handle_datagram(now, to, from, &data);
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("socket readers stopped"),
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let summary = json!({"up": up, "failed": failed, "failures": reasons, "wall_s": wall});
    writeln!(std::io::stdout(), "{summary}")?;
    Ok(())
}
