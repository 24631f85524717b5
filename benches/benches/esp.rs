//! ESP encapsulation and decapsulation per transform and crypto provider, at 64, 512 and
//! 1420 bytes and IMIX, in bursts of 32, next to the raw cipher cost of the very same
//! packets in the same run: the difference is the non-crypto cost per packet, the number to
//! drive down. `benches/report.py` turns the results into the table of benches/README.md.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use esprit_benches::{imix, inner_v4, pair, sealed};
use esprit_esp::crypto::{providers, CryptoOp};
use esprit_esp::sa::{Endpoint, InboundMeta};
use esprit_esp::{DropReason, HeapBuf, PacketBuf, Transform};

const BURST: usize = 32;

fn sizes(name: &str, mtu: usize) -> Vec<usize> {
    match name {
        "imix" => {
            let one = imix(mtu);
            one.iter().cycle().take(BURST.max(one.len())).copied().collect()
        }
        n => vec![n.parse().expect("a size"); BURST],
    }
}

fn bench(c: &mut Criterion) {
    let only = std::env::var("ESPRIT_BENCH_TRANSFORMS").ok();
    for t in Transform::ALL {
        if only.as_deref().is_some_and(|o| !o.split(',').any(|x| x == t.name())) {
            continue;
        }
        for p in providers() {
            if !p.supports(t) {
                continue;
            }
            let (tx, rx) = pair(t, p);
            let mtu = tx.inner_mtu(1500, 0) as usize;
            let mut g = c.benchmark_group(format!("esp/{}/{}", t.name(), p.name()));
            g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
            for size in ["64", "512", "1420", "imix"] {
                let sz = sizes(size, mtu);
                let bytes: usize = sz.iter().sum();
                let inner: Vec<Vec<u8>> = sz.iter().enumerate().map(|(i, &s)| inner_v4(s, i as u8)).collect();
                g.throughput(Throughput::Bytes(bytes as u64));
                // Encapsulation: header, trailer, crypto, outer header, per burst.
                g.bench_function(BenchmarkId::new("encap", size), |b| {
                    let mut verdicts = vec![Ok(()); inner.len()];
                    b.iter_batched_ref(
                        || inner.iter().map(|x| HeapBuf::from_slice(x)).collect::<Vec<_>>(),
                        |bufs| tx.encap_burst(bufs, &mut verdicts, 1),
                        BatchSize::SmallInput,
                    )
                });
                // The raw cipher on the same ESP packets: what encap costs without ESP.
                let outer = sealed(&tx, &sz);
                let esp: Vec<Vec<u8>> = outer.iter().map(|o| o[28..].to_vec()).collect();
                g.bench_function(BenchmarkId::new("raw_seal", size), |b| {
                    b.iter_batched_ref(
                        || esp.clone(),
                        |pkts| {
                            let mut ops: Vec<CryptoOp> = pkts.iter_mut().map(|e| CryptoOp::new(e, 7)).collect();
                            tx.cipher().seal(&mut ops);
                        },
                        BatchSize::SmallInput,
                    )
                });
                let meta = vec![
                    InboundMeta {
                        esp_offset: 28,
                        src: Endpoint { addr: "203.0.113.7".parse().expect("addr"), port: 4500 },
                        udp: true
                    };
                    outer.len()
                ];
                g.bench_function(BenchmarkId::new("decap", size), |b| {
                    let mut verdicts = vec![Err(DropReason::NoBuffer); outer.len()];
                    b.iter_batched_ref(
                        || outer.iter().map(|x| HeapBuf::from_slice(x)).collect::<Vec<_>>(),
                        |bufs| {
                            rx.decap_burst(bufs, &meta, &mut verdicts, 1);
                            debug_assert!(verdicts.iter().all(Result::is_ok));
                        },
                        BatchSize::SmallInput,
                    )
                });
                g.bench_function(BenchmarkId::new("raw_open", size), |b| {
                    b.iter_batched_ref(
                        || esp.clone(),
                        |pkts| {
                            let mut ops: Vec<CryptoOp> =
                                pkts.iter_mut().enumerate().map(|(i, e)| CryptoOp::new(e, 1 + i as u64)).collect();
                            rx.cipher().open(&mut ops);
                        },
                        BatchSize::SmallInput,
                    )
                });
                // The same burst copied into buffers, to subtract the setup copy if wanted.
                g.bench_function(BenchmarkId::new("copy_only", size), |b| {
                    b.iter(|| outer.iter().map(|x| HeapBuf::from_slice(x)).map(|h| h.len()).sum::<usize>())
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
