//! Inbound SA lookup by SPI at 1k, 100k and 1M entries, one key at a time and a burst at a
//! time: the cost must stay flat.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use esprit_satable::{epoch, HashTable};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("satable/lookup");
    for n in [1_000usize, 100_000, 1_000_000] {
        let (t, mut w) = HashTable::<u32, [u64; 8]>::new(n);
        // SPIs are random 32-bit values in practice.
        let mut x = 0x9e37_79b9u32;
        let mut spis = Vec::with_capacity(n);
        {
            let guard = epoch::pin();
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                spis.push(x);
                w.insert(x, [x as u64; 8], &guard).expect("capacity");
            }
        }
        // Bursts of 32 lookups spread over the whole table, as traffic from many clients
        // is: with a million SAs most lookups miss the CPU caches.
        let probe: Vec<u32> = (0..65536usize).map(|i| spis[(i.wrapping_mul(2_654_435_761) + 13) % n]).collect();
        let mut at = 0usize;
        g.throughput(Throughput::Elements(32));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let guard = epoch::pin();
                let mut s = 0u64;
                for k in &probe[at..at + 32] {
                    s = s.wrapping_add(t.get(k, &guard).map_or(0, |v| v[0]));
                }
                at = (at + 32) % probe.len();
                s
            })
        });
        // The same bursts through `get_many`: the misses of a burst overlap.
        g.bench_function(BenchmarkId::new("burst", n), |b| {
            b.iter(|| {
                let guard = epoch::pin();
                let mut out = [None; 32];
                t.get_many(&probe[at..at + 32], &guard, &mut out);
                at = (at + 32) % probe.len();
                out.iter().fold(0u64, |s, v| s.wrapping_add(v.map_or(0, |v| v[0])))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
