//! The whole data plane in process, per worker: frames in, frames out, with 1, 1 000 and
//! 100 000 SA pairs installed and traffic spread over all of them — inbound (ESP from N
//! clients decrypted toward the server) and outbound (the server's packets to N virtual IPs
//! encrypted toward N NAT mappings), AES-128-GCM and AES-128-CBC + HMAC-SHA1, 64 bytes, IMIX
//! and 1420 bytes. Pre-built frames are recycled, so the generator costs one memcpy each.
//! `ESPRIT_BENCH_SAS=1,1000` picks the SA counts.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use esprit_benches::gen;
use esprit_benches::imix;
use esprit_engine::shared::{Control, Limits};
use esprit_engine::{config, Worker};
use esprit_esp::{BufPool, HeapBuf, HeapPool, Transform};
use esprit_satable::epoch;

const BURST: usize = 32;

fn setup(t: Transform, n: u32) -> (Control, Worker<HeapPool>) {
    let cfg = config::parse("base.toml", gen::BASE_CONFIG).expect("base config");
    let (mut c, sh) = Control::new(&cfg, Limits { max_sas: n as usize + 16, ..Limits::default() }).expect("control");
    let g = epoch::pin();
    for i in 0..n {
        for (dir, p) in gen::gateway_sas(t, i, true) {
            c.add_sa(dir, p, &g).expect("room");
        }
        c.add_policy(gen::policy(i), &g).expect("room");
    }
    drop(g);
    (c, Worker::new(sh, HeapPool::new(1 << 16), false))
}

fn bench(c: &mut Criterion) {
    let counts: Vec<u32> = std::env::var("ESPRIT_BENCH_SAS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 1000, 100_000]);
    for t in [Transform::Aes128Gcm16, Transform::Aes128Sha1] {
        for &n in &counts {
            let (_control, mut w) = setup(t, n);
            let mut g = c.benchmark_group(format!("pipeline/{}/{}sa", t.name(), n));
            g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
            let mtu = esprit_esp::mtu::max_inner(1500, false, true, t.layout()) as usize;
            for (label, sizes) in [("64", vec![64]), ("imix", imix(mtu)), ("1420", vec![1420.min(mtu)])] {
                // Enough distinct frames to touch every SA (capped: 100k SAs cycle through 4096
                // frames, so lookups still spread over the table).
                let count = (n as usize).clamp(BURST, 4096);
                let outside = gen::outside_frames(t, n, &sizes, count);
                let inside = gen::inside_frames(n, &sizes, count);
                let avg: usize = sizes.iter().sum::<usize>() / sizes.len();
                g.throughput(Throughput::Elements(BURST as u64));
                for (dir, frames, ifidx, out_if) in [("inbound", &outside, 0usize, 1usize), ("outbound", &inside, 1, 0)]
                {
                    let mut at = 0usize;
                    g.bench_function(BenchmarkId::new(dir, format!("{label}-{avg}B")), |b| {
                        // Buffer allocation and frame copies stay outside the timed region.
                        b.iter_custom(|iters| {
                            let mut total = Duration::ZERO;
                            for _ in 0..iters {
                                let bufs: Vec<HeapBuf> = (0..BURST)
                                    .map(|k| w.pool().alloc_frame(&frames[(at + k) % frames.len()]).expect("pool"))
                                    .collect();
                                at = (at + BURST) % frames.len();
                                let t0 = Instant::now();
                                w.rx(ifidx, bufs, 1_000_000_000);
                                total += t0.elapsed();
                                let out: Vec<HeapBuf> = w.tx_queue(out_if).drain(..).collect();
                                for o in out {
                                    w.pool().free(o);
                                }
                            }
                            total
                        })
                    });
                }
                assert_eq!(w.drops.total(), 0, "pipeline dropped: {:?}", w.drops.nonzero().collect::<Vec<_>>());
            }
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
