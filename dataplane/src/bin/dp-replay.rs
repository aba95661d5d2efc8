//! `dp-replay`: runs the hub's data-plane pipeline over captured traffic.
//!
//! ```text
//! dp-replay --config CFG.json --rx PORT:FILE.pcap [--rx PORT:FILE.pcap ...] --out DIR [--burst N]
//!           [--capture peer=IP|port=N|tunnel=N[,points=rx+decrypted+pre-encrypt+tx]]
//! ```
//!
//! The tables (ports, neighbours, routes, tunnels, TEIB, manual SAs) come from the JSON config
//! (`dataplane::static_config`). The frames of all input captures are merged by timestamp and fed to
//! one worker in bursts of up to N (default 32) frames received on the same port, with each frame's
//! capture time as the clock. Written to DIR: `tx-<port>.pcap` for every port, `punts.jsonl` (one JSON
//! object per punt), and `counters.json` (worker counters, every drop reason by name, SA events); with
//! `--capture`, `capture.pcap`: what the data plane's capture saw at the points asked for (all four by
//! default; see `dataplane::capture`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use dataplane::capture;
use dataplane::counters::WorkerCounters;
use dataplane::crypto;
use dataplane::drop::DropReason;
use dataplane::ids::{PortId, TunnelId, WorkerId};
use dataplane::pcap;
use dataplane::pkt::{HeapPkt, PacketBuf};
use dataplane::port::MemPort;
use dataplane::punt::{ControlRings, PuntData};
use dataplane::static_config::StaticConfig;
use dataplane::worker::Worker;

struct Args {
    config: PathBuf,
    rx: Vec<(u16, PathBuf)>,
    out: PathBuf,
    burst: usize,
    capture: Option<capture::Filter>,
}

const USAGE: &str = "usage: dp-replay --config CFG.json --rx PORT:FILE.pcap [--rx ...] --out DIR [--burst N] \
                     [--capture peer=IP|port=N|tunnel=N[,points=rx+decrypted+pre-encrypt+tx]]";

/// Parses `--capture`'s value: comma-separated `peer=`, `port=`, `tunnel=` and `points=` (joined by `+`).
fn parse_capture(spec: &str) -> Result<capture::Filter> {
    use capture::Point;
    let all = vec![Point::Rx, Point::Decrypted, Point::PreEncrypt, Point::Tx];
    let mut f = capture::Filter { port: None, tunnel: None, peer: None, points: all.clone() };
    for part in spec.split(',') {
        let (key, value) =
            part.split_once('=').with_context(|| format!("--capture {spec}: {part:?} is not KEY=VALUE"))?;
        match key {
            "peer" => f.peer = Some(value.parse().with_context(|| format!("--capture peer={value}: not an address"))?),
            "port" => f.port = Some(PortId(value.parse().with_context(|| format!("--capture port={value}"))?)),
            "tunnel" => f.tunnel = Some(TunnelId(value.parse().with_context(|| format!("--capture tunnel={value}"))?)),
            "points" => {
                f.points = value
                    .split('+')
                    .map(|p| {
                        all.iter()
                            .copied()
                            .find(|q| q.name() == p)
                            .with_context(|| format!("--capture: no point {p:?}"))
                    })
                    .collect::<Result<_>>()?;
            }
            _ => bail!("--capture {spec}: unknown key {key:?} (peer, port, tunnel, points)"),
        }
    }
    Ok(f)
}

fn parse_args() -> Result<Args> {
    let mut config = None;
    let mut rx = Vec::new();
    let mut out = None;
    let mut burst = 32;
    let mut capture = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--burst" => burst = value()?.parse().context("--burst: not a number")?,
            "--capture" => capture = Some(parse_capture(&value()?)?),
            "--rx" => {
                let v = value()?;
                let (port, file) = v.split_once(':').with_context(|| format!("--rx {v}: expected PORT:FILE"))?;
                rx.push((port.parse().with_context(|| format!("--rx {v}: port is not a number"))?, file.into()));
            }
            "-h" | "--help" => {
                #[allow(clippy::print_stdout)] // the usage, asked for
                {
                    println!("{USAGE}");
                }
                std::process::exit(0);
            }
            _ => bail!("unknown argument {arg:?}\n{USAGE}"),
        }
    }
    Ok(Args { config: config.context(USAGE)?, rx, out: out.context(USAGE)?, burst, capture })
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let text = fs::read_to_string(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    let config = StaticConfig::from_json(&text).with_context(|| format!("in {}", args.config.display()))?;
    let sas =
        config.sa_db(crypto::default_backend(), [0x5a; 16]).with_context(|| format!("in {}", args.config.display()))?;
    let (publisher, reader) = config.publish(sas).with_context(|| format!("in {}", args.config.display()))?;
    let port_count = publisher.staged().port_count();

    let mut frames = Vec::new();
    for (port, file) in &args.rx {
        if usize::from(*port) >= port_count {
            bail!("--rx {port}:{}: no port {port} in the config", file.display());
        }
        let (_, records) = pcap::read_file(file).with_context(|| format!("reading {}", file.display()))?;
        frames.extend(records.into_iter().map(|r| (r.ts_nanos, *port, r.data)));
    }
    frames.sort_by_key(|(ts, _, _)| *ts);

    let ports = (0..port_count).map(|_| MemPort::<HeapPkt>::new(1 << 16)).collect();
    let rings = Arc::new(ControlRings::new(1 << 16));
    let capture = capture::Capture::new(1 << 12);
    if let Some(filter) = &args.capture {
        capture.start(filter.clone());
    }
    let mut worker = Worker::new(WorkerId(0), ports, reader, Box::new(crypto::SoftEngine), rings.clone(), args.burst)
        .with_capture(capture.clone());
    let mut captured = Vec::new();
    for (sa, seq) in config.seq_starts() {
        worker.set_outbound_seq(sa, seq);
    }

    let mut tx: Vec<Vec<(u64, Vec<u8>)>> = vec![Vec::new(); port_count];
    let mut i = 0;
    while i < frames.len() {
        let (_, port, _) = frames[i];
        let mut now = 0;
        let mut n = 0;
        while i < frames.len() && frames[i].1 == port && n < args.burst {
            let (ts, _, ref data) = frames[i];
            let pkt =
                HeapPkt::from_bytes(data).with_context(|| format!("frame {i}: {} bytes is too long", data.len()))?;
            worker.ports[usize::from(port)].rx.push_back(pkt);
            now = ts;
            n += 1;
            i += 1;
        }
        worker.poll(now);
        for (p, out) in worker.ports.iter_mut().zip(tx.iter_mut()) {
            out.extend(p.tx.drain(..).map(|pkt| (now, pkt.data().to_vec())));
        }
        while let Some(record) = capture.take() {
            captured.push((record.ts_ns, record.data().to_vec()));
        }
    }

    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    for (port, frames) in tx.iter().enumerate() {
        let path = args.out.join(format!("tx-{port}.pcap"));
        pcap::write_file(&path, frames.iter().map(|(ts, f)| (*ts, f.as_slice())))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.capture.is_some() {
        let path = args.out.join("capture.pcap");
        pcap::write_file(&path, captured.iter().map(|(ts, f)| (*ts, f.as_slice())))
            .with_context(|| format!("writing {}", path.display()))?;
        anyhow::ensure!(capture.lost() == 0, "the capture lost {} packets", capture.lost());
    }
    write_punts(&args.out.join("punts.jsonl"), &rings)?;
    write_counters(&args.out.join("counters.json"), &worker.counters, &rings)?;
    Ok(())
}

fn write_punts(path: &Path, rings: &ControlRings<HeapPkt>) -> Result<()> {
    let mut lines = String::new();
    while let Some(p) = rings.punts.pop() {
        let data = match &p.data {
            PuntData::Packet(pkt) => hex::encode(pkt.data()),
            PuntData::Header(s) => hex::encode(s.bytes()),
        };
        let line = json!({
            "kind": p.kind.name(),
            "port": p.port.map(|PortId(n)| n),
            "tunnel": p.tunnel.map(|t| t.0),
            "sa": p.sa.map(|s| s.0),
            "src": p.src.map(|a| a.to_string()),
            "dst": p.dst.map(|a| a.to_string()),
            "data": data,
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    fs::write(path, lines).with_context(|| format!("writing {}", path.display()))
}

fn write_counters(path: &Path, c: &WorkerCounters, rings: &ControlRings<HeapPkt>) -> Result<()> {
    let drops: BTreeMap<_, _> = DropReason::ALL.iter().map(|r| (r.name(), c.drops_for(*r))).collect();
    let mut events = Vec::new();
    while let Some(e) = rings.events.pop() {
        events.push(json!({ "sa": e.sa.0, "event": e.kind.name() }));
    }
    let value: Value = json!({
        "rx_packets": c.rx_packets.get(),
        "rx_bytes": c.rx_bytes.get(),
        "tx_packets": c.tx_packets.get(),
        "tx_bytes": c.tx_bytes.get(),
        "punted": c.punted.get(),
        "esp_encrypted": c.esp_encrypted.get(),
        "handed_off": c.handed_off.get(),
        "fragmented": c.fragmented.get(),
        "esp_decrypted": c.esp_decrypted.get(),
        "icmp_sent": c.icmp_sent.get(),
        "mss_clamped": c.mss_clamped.get(),
        "drops": drops,
        "sa_events": events,
    });
    fs::write(path, serde_json::to_string_pretty(&value)? + "\n").with_context(|| format!("writing {}", path.display()))
}
