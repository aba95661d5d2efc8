//! Criterion benchmarks of the hub's three paths (LAN→tunnel, tunnel→LAN, spoke→hub→spoke) at 64 B, IMIX
//! and 1400 B, with 1, 1,000 and 100,000 spokes, on one core.
//!
//! Each criterion iteration is one burst of 32 packets through `Worker::poll` on in-memory ports; only
//! `poll` is timed (`iter_custom`), so generating and encrypting the spokes' packets is not counted.
//! Throughput is in packets (elements) per second; frame sizes are the cleartext LAN-side Ethernet frame
//! without FCS (see `perf::traffic`). Times are short so that the whole run takes a few minutes on two
//! cores: `cargo bench -p perf --bench pipeline` (filter with `-- lan-to-tunnel/64B/1000`).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use perf::scenario::{Scenario, ScenarioOptions};
use perf::traffic::{Bench, FrameSize, Path};

const PEERS: [u32; 3] = [1, 1_000, 100_000];

fn pipeline(c: &mut Criterion) {
    for peers in PEERS {
        let mut bench = match Scenario::build(ScenarioOptions::new(peers)) {
            Ok(s) => Bench::new(s),
            Err(e) => panic!("building the {peers}-spoke scenario: {e}"),
        };
        if let Err(e) = bench.prewarm() {
            panic!("warming the {peers}-spoke scenario: {e}");
        }
        let burst = bench.scenario.options.burst as u64;
        for path in Path::ALL {
            let mut group = c.benchmark_group(path.name());
            group.throughput(Throughput::Elements(burst));
            for size in FrameSize::ALL {
                let id = BenchmarkId::new(size.name(), peers);
                group.bench_function(id, |b| {
                    b.iter_custom(|bursts| match bench.run_bursts(path, size, bursts) {
                        Ok(m) if m.wrong == 0 => m.busy,
                        Ok(m) => panic!(
                            "{} {} {peers}: {} of {} packets not delivered",
                            path.name(),
                            size.name(),
                            m.wrong,
                            m.packets
                        ),
                        Err(e) => panic!("{} {} {peers}: {e}", path.name(), size.name()),
                    })
                });
            }
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10);
    targets = pipeline
}
criterion_main!(benches);
