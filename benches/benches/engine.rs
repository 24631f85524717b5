//! The whole engine per packet, frames in and frames out (Ethernet, classification, SA
//! lookup, ESP, routing, neighbor, transmit queue), inbound and outbound, 1 SA and many.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use esprit_benches::inner_v4;
use esprit_engine::{config, BufPool, Engine, HeapPool};
use esprit_esp::HeapBuf;

const GW: &str = include_str!("../../deploy/examples/offline/gateway.toml");
const BURST: usize = 32;

fn eth(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(payload);
    f
}

fn bench(c: &mut Criterion) {
    let cfg = config::parse("gateway.toml", GW).expect("example config is valid");
    let mut g = c.benchmark_group("engine/aes128gcm16");
    g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for size in [64usize, 512, 1420] {
        // Outbound: the server's packets to the client, encrypted toward the NAT mapping.
        let frames: Vec<Vec<u8>> = (0..BURST)
            .map(|i| {
                let mut p = inner_v4(size, i as u8);
                // 10.1.0.5 -> 10.9.0.2
                p[12..16].copy_from_slice(&[10, 1, 0, 5]);
                p[16..20].copy_from_slice(&[10, 9, 0, 2]);
                esprit_wire::ipv4::Packet::new_unchecked(&mut p[..]).fill_checksum();
                eth([2, 0, 0, 0, 2, 1], [2, 0, 0, 0, 2, 5], &p)
            })
            .collect();
        let mut e = Engine::new(&cfg, HeapPool::new(1 << 14)).expect("engine");
        g.throughput(Throughput::Bytes((size * BURST) as u64));
        g.bench_function(BenchmarkId::new("outbound", size), |b| {
            b.iter_batched(
                || frames.iter().map(|f| HeapBuf::from_slice(f)).collect::<Vec<_>>(),
                |bufs| {
                    e.rx(1, bufs, 1_000_000_000);
                    let out: Vec<HeapBuf> = e.tx_queue(0).drain(..).collect();
                    assert_eq!(out.len(), BURST);
                    for o in out {
                        e.pool().free(o);
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
