//! Fuzzes the whole hub pipeline: a sequence of frames, each received on the WAN or the LAN port of the
//! interop suite's hub (`fuzz/pipeline_hub.json`: one protected mGRE tunnel, spokes with AES-GCM SAs),
//! goes through one worker. Input: repeated `[port & 1][len: u16 BE][frame]`. Nothing may panic, and
//! every frame must be accounted for.
#![no_main]

use std::sync::{Arc, OnceLock};

use dataplane::crypto::{default_backend, SoftEngine};
use dataplane::ids::WorkerId;
use dataplane::pkt::HeapPkt;
use dataplane::port::MemPort;
use dataplane::punt::ControlRings;
use dataplane::static_config::StaticConfig;
use dataplane::tables::TablesReader;
use dataplane::worker::Worker;
use libfuzzer_sys::fuzz_target;

/// The published tables, built once (the IPv4 FIB alone is 64 MiB); each run gets a fresh worker, so
/// replay windows and counters start from zero.
fn tables() -> &'static (TablesReader, usize) {
    static TABLES: OnceLock<(TablesReader, usize)> = OnceLock::new();
    TABLES.get_or_init(|| {
        let config = StaticConfig::from_json(include_str!("../pipeline_hub.json")).expect("hub config");
        let sas = config.sa_db(default_backend(), [1; 16]).expect("SAs");
        let (publisher, reader) = config.publish(sas).expect("tables");
        let ports = publisher.staged().port_count();
        (reader, ports)
    })
}

fuzz_target!(|data: &[u8]| {
    let (reader, port_count) = tables();
    let ports = (0..*port_count).map(|_| MemPort::new(1024)).collect();
    let rings = Arc::new(ControlRings::new(1024));
    let mut worker = Worker::new(WorkerId(0), ports, reader.clone(), Box::new(SoftEngine), rings, 32);

    let mut rest = data;
    let mut frames = 0u64;
    while let [port, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        if let Some(pkt) = HeapPkt::from_bytes(frame) {
            worker.ports[usize::from(port & 1)].rx.push_back(pkt);
            frames += 1;
        }
    }
    let mut now = 1_000_000_000;
    while worker.ports.iter().any(|p| !p.rx.is_empty()) {
        worker.poll(now);
        now += 1_000_000;
    }
    assert_eq!(worker.counters.rx_packets.get(), frames, "every frame was received");
    let sent: u64 = worker.ports.iter().map(|p| p.tx.len() as u64).sum();
    assert_eq!(worker.counters.tx_packets.get(), sent, "tx counter matches what the ports got");
});
