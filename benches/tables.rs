//! Criterion benchmarks of the data-plane tables: session table lookup,
//! insert and expiry at one million entries, Maglev and scheduler picks,
//! and the bucket map. Figures are ns per operation; see docs/tables.md.
#![forbid(unsafe_code)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use roamlb::dataplane::buckets::BucketMap;
use roamlb::dataplane::scheduler::{Backend, BackendSet, Policy, Scheduler};
use roamlb::dataplane::table::Table;
use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The 20-byte session key of the memory goal: service + identity image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key20 {
    service: u16,
    id: [u8; 18],
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn key(n: u64) -> (u64, Key20) {
    let mut id = [0u8; 18];
    id[..8].copy_from_slice(&n.to_le_bytes());
    (mix(n), Key20 { service: 443, id })
}

const MILLION: u64 = 1_000_000;
const LONG: u32 = 1 << 30;

/// A table of `slots_for` capacity holding `n` long-lived keys 0..n.
fn filled(capacity: usize, n: u64) -> Table<Key20, u32> {
    let mut t = Table::with_capacity(capacity).expect("table");
    for i in 0..n {
        let (h, k) = key(i);
        t.insert(h, k, i as u32, LONG, 0).expect("room");
    }
    t
}

fn table_benches(c: &mut Criterion) {
    // 1M entries in the table sized for 1M (2^21 slots, load 0.48), and
    // 2^20 slots at load 3/4 and at the 7/8 limit (917 504 entries).
    let cases: [(&str, usize, u64); 4] = [
        ("1M", 1_000_000, MILLION),
        // The bench script's DUT: 4M sessions per worker (2^23 slots), 1M
        // identities active (load 1/8).
        ("1M-of-4M", 4_194_304, MILLION),
        ("load-3/4", 917_504, 786_432),
        ("full-7/8", 917_504, 917_504),
    ];
    let probe: Vec<(u64, Key20)> = (0..MILLION)
        .map(|i| key(mix(i ^ 0x5555) % MILLION))
        .collect();
    for (name, cap, n) in cases {
        let mut t = filled(cap, n);
        let probe: Vec<(u64, Key20)> = probe
            .iter()
            .copied()
            .filter(|(_, k)| u64::from_le_bytes(k.id[..8].try_into().unwrap_or([0; 8])) < n)
            .collect();
        let mut g = c.benchmark_group(format!("table/{name}"));
        let mut i = 0usize;
        g.bench_function("lookup_hit", |b| {
            b.iter(|| {
                let (h, k) = &probe[i];
                i = if i + 1 == probe.len() { 0 } else { i + 1 };
                black_box(t.lookup(*h, k, 1).map(|e| e.value()))
            })
        });
        let mut m = 0u64;
        g.bench_function("lookup_miss", |b| {
            b.iter(|| {
                m += 1;
                let (h, k) = key(n + 10 * MILLION + (m & 0xfffff));
                black_box(t.lookup(h, &k, 1).is_some())
            })
        });
        // Inserts of new keys, timed in chunks; each chunk is removed
        // (untimed) so the load stays at its base level.
        if t.len() + 50_000 <= t.capacity() {
            let mut next = 100 * MILLION;
            g.bench_function("insert_new", |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let chunk = left.min(50_000);
                        let keys: Vec<(u64, Key20)> = (next..next + chunk).map(key).collect();
                        next += chunk;
                        let t0 = Instant::now();
                        for (h, k) in &keys {
                            black_box(t.insert(*h, *k, 7, 300, 1).is_ok());
                        }
                        total += t0.elapsed();
                        for (h, k) in &keys {
                            t.remove(*h, k);
                        }
                        left -= chunk;
                    }
                    total
                })
            });
        }
        // Prefetch-by-touch: touch the home slots of a burst of 32, then
        // look them up; ns per key.
        let mut j = 0usize;
        g.throughput(Throughput::Elements(32));
        g.bench_function("lookup_hit_burst32_touch", |b| {
            b.iter(|| {
                if j + 32 > probe.len() {
                    j = 0;
                }
                let burst = &probe[j..j + 32];
                j += 32;
                let mut sink = 0u64;
                for (h, _) in burst {
                    sink ^= t.touch(*h);
                }
                black_box(sink);
                for (h, k) in burst {
                    black_box(t.lookup(*h, k, 1).map(|e| e.value()));
                }
            })
        });
        // The worker's two-stage prefetch over a burst of 32 (stored
        // hashes, then the matching entry), then the look-ups; ns per key.
        let mut j = 0usize;
        g.bench_function("lookup_hit_burst32_prefetch", |b| {
            b.iter(|| {
                if j + 32 > probe.len() {
                    j = 0;
                }
                let burst = &probe[j..j + 32];
                j += 32;
                for (h, _) in burst {
                    t.prefetch_hashes(*h);
                }
                for (h, _) in burst {
                    t.prefetch_entry(*h);
                }
                for (h, k) in burst {
                    black_box(t.lookup(*h, k, 1).map(|e| e.value()));
                }
            })
        });
        // Sweep steps over a table where nothing expires: cost per slot.
        g.throughput(Throughput::Elements(4096));
        g.bench_function("expire_scan_4096_slots", |b| {
            b.iter(|| black_box(t.expire(2, 4096, |_| {})))
        });
        g.finish();
    }

    // Expiry of 1M entries: fill with short lifetimes (untimed), time full
    // sweeps until all are gone. One iteration = 1M removals over 2^21 slots.
    let mut g = c.benchmark_group("table/1M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(MILLION));
    let mut t: Table<Key20, u32> = Table::with_capacity(1_000_000).expect("table");
    g.bench_function("expire_sweep_1M_entries", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for i in 0..MILLION {
                    let (h, k) = key(i);
                    t.insert(h, k, 0, 5, 0).expect("room");
                }
                let t0 = Instant::now();
                let mut gone = 0u64;
                while gone < MILLION {
                    gone += t.expire(10, t.slots(), |e| {
                        black_box(e.value());
                    }) as u64;
                }
                total += t0.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn backends(n: u16) -> Vec<Backend> {
    (1..=n)
        .map(|i| Backend {
            address: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)),
            weight: 1 + u32::from(i % 4),
            group: 0,
            healthy: true,
        })
        .collect()
}

fn scheduler_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("scheduler");
    for (policy, name) in [
        (Policy::Maglev, "maglev_pick_100_backends"),
        (Policy::WeightedRoundRobin, "wrr_pick_100_backends"),
        (Policy::LeastConnections, "least_conn_pick_100_backends"),
    ] {
        let set = BackendSet::new(backends(100), policy, 1).expect("set");
        let mut s = Scheduler::new(set, 128).expect("scheduler");
        let mut k = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                k += 1;
                black_box(s.pick(mix(k)))
            })
        });
    }
    let set = BackendSet::new(backends(100), Policy::Maglev, 1).expect("set");
    let m = set.maglev().expect("maglev");
    let mut k = 0u64;
    g.bench_function("maglev_lookup", |b| {
        b.iter(|| {
            k += 1;
            black_box(m.lookup(mix(k)))
        })
    });
    g.sample_size(10);
    g.bench_function("maglev_build_100_backends", |b| {
        b.iter(|| black_box(BackendSet::new(backends(100), Policy::Maglev, 1).is_ok()))
    });
    g.finish();

    let mut map = BucketMap::new(4096, 1).expect("map");
    map.assign_cores(1, 8, |_| false).expect("cores");
    let mut k = 0u64;
    c.bench_function("buckets/core_of", |b| {
        b.iter(|| {
            k += 1;
            black_box(map.core_of(mix(k)))
        })
    });
}

criterion_group!(benches, table_benches, scheduler_benches);
criterion_main!(benches);
