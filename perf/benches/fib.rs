//! FIB benchmarks: single and bulk lookup at 1k, 100k and 1M routes (IPv4 and IPv6), the cost of
//! applying and publishing a batch of 1 and of 1,000 route changes into a 1M-route table, and the memory
//! a 1M-route table takes (printed to stderr).
//!
//! Run: `cargo bench -p perf --bench fib -- --warm-up-time 1 --measurement-time 2`.
//!
//! Route sets are random but shaped like the Internet table (fixed seed):
//! - IPv4 /8–/32: /24 55 %, /22–/23 20 %, /16–/21 15 %, /8–/15 1 %, /25–/31 4 %, and /32 host routes
//!   5 % clustered in a few overlay /16s (as NHRP installs them for spokes).
//! - IPv6 /32–/128: /48 45 %, /32–/44 35 %, /56–/64 15 %, /128 host routes 5 % clustered in overlay /64s.
//!   Non-host prefixes sit under 20,000 random provider /32s in 2000::/3.
//!
//! Lookups go to a random address inside a random route, 1M of them per run so that they do not all stay
//! in cache (ns per lookup = time / 1,048,576).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::fib::{Family, Fib, FibBuilder, NextHopId, V4, V6};

/// Destinations per lookup run: 1M, so that the probes themselves do not stay in cache and lookups into
/// a large table miss as forwarding does.
const PROBES: usize = 1 << 20;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn v4_route(r: &mut Rng) -> (u32, u8) {
    let p = r.below(100);
    let len = match p {
        0..55 => 24,
        55..75 => 22 + r.below(2) as u8,
        75..90 => 16 + r.below(6) as u8,
        90..91 => 8 + r.below(8) as u8,
        91..95 => 25 + r.below(7) as u8,
        _ => 32,
    };
    let addr = if len == 32 {
        // Overlay host routes: 10.{0..7}.x.y.
        0x0a00_0000 | (r.below(8) as u32) << 16 | (r.next() as u32 & 0xffff)
    } else {
        // Unicast space 1.0.0.0–223.255.255.255.
        ((1 + r.below(223)) as u32) << 24 | (r.next() as u32 & 0x00ff_ffff)
    };
    (V4::network(addr, len), len)
}

fn v6_route(r: &mut Rng, providers: &[u128]) -> (u128, u8) {
    let p = r.below(100);
    let len = match p {
        0..45 => 48,
        45..80 => [32, 36, 40, 44][r.below(4) as usize],
        80..95 => [56, 60, 64][r.below(3) as usize],
        _ => 128,
    };
    let addr = if len == 128 {
        // Overlay host routes in 2001:db8:0:{0..7}::/64.
        0x2001_0db8u128 << 96 | u128::from(r.below(8)) << 64 | u128::from(r.next() & 0xffff)
    } else {
        providers[r.below(providers.len() as u64) as usize] | (u128::from(r.next()) << 32)
    };
    (V6::network(addr, len), len)
}

fn build<F: Family>(routes: &[(F::Bits, u8)]) -> FibBuilder<F> {
    let mut b = FibBuilder::<F>::new();
    for (i, &(p, len)) in routes.iter().enumerate() {
        b.insert(F::addr(p), len, NextHopId(i as u32 % 100_000)).unwrap();
    }
    b
}

/// A random address inside each of `n` random routes.
fn probes<F: Family>(
    routes: &[(F::Bits, u8)],
    n: usize,
    r: &mut Rng,
    host: impl Fn(u64, u8) -> F::Bits,
    or: impl Fn(F::Bits, F::Bits) -> F::Bits,
) -> Vec<F::Addr> {
    (0..n)
        .map(|_| {
            let (p, len) = routes[r.below(routes.len() as u64) as usize];
            F::addr(or(p, host(r.next(), len)))
        })
        .collect()
}

fn routes_v4(n: usize, seed: u64) -> Vec<(u32, u8)> {
    let mut r = Rng(seed);
    (0..n).map(|_| v4_route(&mut r)).collect()
}

fn routes_v6(n: usize, seed: u64) -> Vec<(u128, u8)> {
    let mut r = Rng(seed);
    let providers: Vec<u128> = (0..20_000)
        .map(|_| (0x2000u128 | u128::from(r.below(0x2000))) << 112 | u128::from(r.next() & 0xffff) << 96)
        .collect();
    (0..n).map(|_| v6_route(&mut r, &providers)).collect()
}

fn lookups<F: Family>(c: &mut Criterion, name: &str, fib: &Fib<F>, dst: &[F::Addr], size: usize) {
    let mut g = c.benchmark_group(format!("{name}_lookup"));
    g.sample_size(10);
    g.throughput(Throughput::Elements(dst.len() as u64));
    g.bench_with_input(BenchmarkId::new("single", size), &dst, |b, dst| {
        b.iter(|| {
            for d in dst.iter() {
                black_box(fib.lookup(*d));
            }
        })
    });
    let mut out = vec![None; dst.len()];
    g.bench_with_input(BenchmarkId::new("bulk", size), &dst, |b, dst| {
        b.iter(|| {
            fib.lookup_bulk(dst, &mut out);
            black_box(&out);
        })
    });
    g.finish();
}

/// Applies `batch` changes (half withdrawals of existing routes, half new routes) and publishes, while
/// the previous snapshot is still held (as a worker would).
fn updates<F: Family>(c: &mut Criterion, name: &str, mut b: FibBuilder<F>, fresh: Vec<(F::Bits, u8)>) {
    let mut g = c.benchmark_group(format!("{name}_publish_1M"));
    g.sample_size(10);
    let mut published: Arc<Fib<F>> = b.snapshot();
    let mut k = 0usize;
    for batch in [1usize, 1000] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(BenchmarkId::new("batch", batch), |bench| {
            bench.iter(|| {
                for _ in 0..batch {
                    let i = k % fresh.len();
                    let (p, len) = fresh[i];
                    if (k / fresh.len()) & 1 == 0 {
                        b.insert(F::addr(p), len, NextHopId(7)).unwrap();
                    } else {
                        b.remove(F::addr(p), len).unwrap();
                    }
                    k += 1;
                }
                published = b.snapshot();
            })
        });
    }
    g.finish();
    black_box(published);
}

fn bench(c: &mut Criterion) {
    let mut r = Rng(0x5eed);
    for size in [1_000usize, 100_000, 1_000_000] {
        let routes = routes_v4(size, 1);
        let t = Instant::now();
        let b = build::<V4>(&routes);
        let built = t.elapsed();
        let dst = probes::<V4>(
            &routes,
            PROBES,
            &mut r,
            |x, len| (x as u32) & u32::MAX.checked_shr(u32::from(len)).unwrap_or(0),
            |a, b| a | b,
        );
        eprintln!(
            "v4 {size} routes ({} distinct): built in {built:?}, trie {:.1} MiB, route list {:.1} MiB",
            b.len(),
            b.fib().memory_bytes() as f64 / 1048576.0,
            b.rules_memory_bytes() as f64 / 1048576.0
        );
        lookups(c, "v4", b.fib(), &dst, size);
        if size == 1_000_000 {
            updates(c, "v4", b, routes_v4(10_000, 2));
        }
    }
    for size in [1_000usize, 100_000, 1_000_000] {
        let routes = routes_v6(size, 3);
        let t = Instant::now();
        let b = build::<V6>(&routes);
        let built = t.elapsed();
        let dst = probes::<V6>(
            &routes,
            PROBES,
            &mut r,
            |x, len| (u128::from(x) | u128::from(x) << 64) & u128::MAX.checked_shr(u32::from(len)).unwrap_or(0),
            |a, b| a | b,
        );
        eprintln!(
            "v6 {size} routes ({} distinct): built in {built:?}, trie {:.1} MiB, route list {:.1} MiB",
            b.len(),
            b.fib().memory_bytes() as f64 / 1048576.0,
            b.rules_memory_bytes() as f64 / 1048576.0
        );
        lookups(c, "v6", b.fib(), &dst, size);
        if size == 1_000_000 {
            updates(c, "v6", b, routes_v6(10_000, 4));
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
